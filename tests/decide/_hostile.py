"""Hostile chat-completion answers, as raw HTTP bytes, drawn from their natural distribution.

A good answer (a JSON body or an SSE stream, a reply or a tool call) is spoiled one way a
broken or hostile server spoils it: a hostile JSON value spliced into any field, random bytes
and bit flips (``hostile_bytes``), an error status with a deep or undecodable body and any
``Retry-After``, odd headers, a stream cut anywhere, split anywhere or carrying invalid UTF-8.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

from tests._fuzz import hostile_bytes, hostile_values

from ._raw_server import chunked, response

__all__ = [
    "GOOD_BODY",
    "Answer",
    "hostile_answers",
    "hostile_json",
    "hostile_retry_after",
    "render",
]

GOOD_BODY = b'{"choices":[{"index":0,"message":{"content":"fine"},"finish_reason":"stop"}]}'


def render(value: Any) -> str:
    """JSON text of ``value`` as a sloppy server writes it: NaN, Infinity, surrogates escaped.

    Iterative, so values nested far past the recursion limit render too.
    """
    out: list[str] = []
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif isinstance(item, list):
            out.append("[")
            pending.append(_Token("]"))
            for i, inner in enumerate(reversed(item)):
                pending.append(inner)
                if i < len(item) - 1:
                    pending.append(_Token(","))
        elif isinstance(item, dict):
            out.append("{")
            pending.append(_Token("}"))
            entries = list(item.items())
            for i, (key, inner) in enumerate(reversed(entries)):
                pending.append(inner)
                pending.append(_Token(json.dumps(str(key)) + ":"))
                if i < len(entries) - 1:
                    pending.append(_Token(","))
        elif isinstance(item, float) and not math.isfinite(item):
            out.append("NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity"))
        else:
            out.append(json.dumps(item))
    return "".join(out)


class _Token:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_ODD = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1", "1" + "0" * 30, "1.5", "true", "null",
    "{}", "[]", '""', '"\\ud800"', '"\\udc00x"', "[1,", '{"a":', "'single'", "0x10", "+1",
]  # fmt: skip


@st.composite
def hostile_json(draw: st.DrawFn) -> bytes:
    """One JSON value, or something in its place, that a naive decoder chokes on."""
    kind = draw(st.sampled_from(["deep", "odd", "value", "huge", "bad_utf8"]))
    if kind == "deep":
        depth = draw(st.integers(100, 5000))
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
        leaf = draw(st.sampled_from(["1", '"x"', ""])) if opening == "[" else "1"
        return (opening * depth + leaf + closing * depth).encode()
    if kind == "odd":
        return draw(st.sampled_from(_ODD)).encode()
    if kind == "value":
        return render(draw(hostile_values())).encode("utf-8", errors="surrogatepass")
    if kind == "huge":
        return b'"' + b"x" * draw(st.sampled_from([70_000, 300_000])) + b'"'
    return b'"caf' + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + b'"'


def _as_string(value: bytes) -> bytes:
    """``value`` as the content of a JSON string (how arguments travel)."""
    return json.dumps(value.decode("utf-8", errors="replace")).encode()


# Templates of a good answer; ``@`` marks where a hostile value goes.
_FIELDS = [
    b'{"choices":[{"index":0,"message":{"content":@},"finish_reason":"stop"}]}',
    b'{"choices":[{"index":0,"message":{"content":"x","refusal":@},"finish_reason":"stop"}]}',
    b'{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":@}]}',
    b'{"choices":[{"index":@,"message":{"content":"x"},"finish_reason":"stop"}]}',
    b'{"choices":[{"index":0,"message":@,"finish_reason":"stop"}]}',
    b'{"choices":[@]}',
    b'{"choices":@}',
    b'{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}],"usage":@}',
    b'{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":@,"completion_tokens":1,"total_tokens":2}}',
    b'{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}],'
    b'"usage":{"total_tokens":@}}',
    b'{"error":@}',
    b'{"surprise":@,"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"id":@,"function":'
    b'{"name":"get_weather","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"id":"c","function":'
    b'{"name":@,"arguments":"{}"}}]},"finish_reason":"tool_calls"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"index":@,"id":"c","function":'
    b'{"name":"get_weather","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"id":"c","function":'
    b'{"name":"get_weather","arguments":@}}]},"finish_reason":"tool_calls"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"id":"c","function":'
    b'{"name":"get_weather","arguments":{"city":@}}}]},"finish_reason":"tool_calls"}]}',
    b'{"choices":[{"index":0,"message":{"tool_calls":@},"finish_reason":"tool_calls"}]}',
]
_STRING_ARGUMENTS = (
    b'{"choices":[{"index":0,"message":{"tool_calls":[{"id":"c","function":'
    b'{"name":"get_weather","arguments":@}}]},"finish_reason":"tool_calls"}]}'
)
_CHUNKS = [
    b'data: {"choices":[{"index":0,"delta":{"content":"fi"},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"ne"},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":'
    b'{"name":"get_weather","arguments":"{\\"ci"}}]},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"ty\\": \\"Paris\\"}"}}]},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
    b"data: [DONE]\n\n",
]
_STREAM_FIELDS = [
    b'data: {"choices":[{"index":0,"delta":{"content":@},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":@}}]},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":@}\n\n',
    b"data: @\n\n",
    b'data: {"choices":[{"index":0,"delta":@,"finish_reason":null}]}\n\n',
]


@st.composite
def hostile_retry_after(draw: st.DrawFn) -> str:
    """A ``Retry-After`` value from a broken server: numbers of every kind, dates, garbage."""
    kind = draw(st.sampled_from(["float", "int", "date", "text", "bytes", "odd"]))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=True, allow_infinity=True)))
    if kind == "int":
        return str(draw(st.integers(-(2**70), 2**70)))
    if kind == "date":
        day = draw(st.sampled_from(["Mon", "Wed", "Xyz", ""]))
        date = draw(st.sampled_from(["01 Jan 0001", "21 Oct 2015", "31 Dec 9999", "32 Foo 2020"]))
        zone = draw(st.sampled_from(["GMT", "-0000", "+9999", "-2400", "UT", "EST", ""]))
        return f"{day}, {date} {draw(st.sampled_from(['07:28:00', '99:99:99', '']))} {zone}"
    if kind == "text":
        return draw(st.text(max_size=30))
    if kind == "bytes":
        return draw(hostile_bytes(b"120")).decode("latin-1")[:200]
    return draw(st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-0", " 5", "5.", "1_0"]))


class Answer:
    """One hostile answer: the raw bytes sent, and what they spoil."""

    __slots__ = ("kind", "raw", "stream")

    def __init__(self, kind: str, raw: bytes, *, stream: bool = False) -> None:
        self.kind = kind
        self.raw = raw
        self.stream = stream

    def __repr__(self) -> str:
        return f"Answer({self.kind}, {self.raw[:120]!r}..., {len(self.raw)} bytes)"


def _header_value(text: str) -> str:
    # what can go on the wire as one header line
    return (
        "".join(c for c in text if c not in "\r\n\x00")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


@st.composite
def hostile_answers(draw: st.DrawFn) -> Answer:
    """A whole HTTP answer to a chat-completions request, spoiled one way."""
    kind = draw(
        st.sampled_from(["field", "field", "arguments", "bytes", "status", "headers", "stream"])
    )
    if kind == "field":
        body = draw(st.sampled_from(_FIELDS)).replace(b"@", draw(hostile_json()), 1)
        return Answer(kind, response(body=body))
    if kind == "arguments":
        body = _STRING_ARGUMENTS.replace(b"@", _as_string(draw(hostile_json())), 1)
        return Answer(kind, response(body=body))
    if kind == "bytes":
        return Answer(kind, response(body=draw(hostile_bytes(GOOD_BODY))))
    if kind == "status":
        status = draw(st.sampled_from([301, 400, 401, 404, 408, 429, 429, 500, 502, 503, 599]))
        body = draw(
            st.sampled_from([b"", b"oops", b'{"error":{"message":"slow down"}}'])
            | hostile_json().map(lambda v: b'{"error":' + v + b"}")
            | hostile_bytes(b'{"error":{"message":"x"}}')
        )
        headers = {}
        if draw(st.booleans()):
            name = draw(st.sampled_from(["Retry-After", "retry-after-ms"]))
            headers[name] = _header_value(draw(hostile_retry_after()))
        return Answer(kind, response(status, body, headers))
    if kind == "headers":
        shape = draw(st.integers(0, 4))
        if shape == 0:
            return Answer(kind, response(body=GOOD_BODY, length=len(GOOD_BODY) + 50))
        if shape == 1:
            garbage = draw(st.binary(min_size=1, max_size=40))
            encoding = draw(st.sampled_from(["gzip", "deflate", "br", "zstd", "x-nonsense"]))
            return Answer(kind, response(body=garbage, headers={"Content-Encoding": encoding}))
        if shape == 2:
            charset = draw(st.sampled_from(["rot13", "utf-16", "no-such-codec", "latin-1"]))
            return Answer(
                kind, response(body=GOOD_BODY, content_type=f"text/plain; charset={charset}")
            )
        if shape == 3:
            return Answer(kind, response(body=GOOD_BODY, content_type="text/event-stream"))
        return Answer(kind, response(body=GOOD_BODY[: draw(st.integers(0, len(GOOD_BODY)))]))
    # a stream, spoiled
    events = list(_CHUNKS if draw(st.booleans()) else [*_CHUNKS[:2], _CHUNKS[4], _CHUNKS[5]])
    spoil = draw(st.sampled_from(["field", "cut", "split", "utf8", "no_done", "no_finish", "cr"]))
    if spoil == "field":
        at = draw(st.integers(0, len(events) - 1))
        events[at] = draw(st.sampled_from(_STREAM_FIELDS)).replace(b"@", draw(hostile_json()), 1)
    elif spoil == "utf8":
        at = draw(st.integers(0, len(events) - 1))
        events[at] = events[at].replace(b"fi", b"f\xff\xc3", 1).replace(b"ci", b"\xed\xa0\x80", 1)
    elif spoil == "no_done":
        events = events[:-1]
    elif spoil == "no_finish":
        events = [e for e in events if b'"finish_reason":"' not in e]
    elif spoil == "cr":
        events = [e.replace(b"\n", b"\r") for e in events]
    data = b"".join(events)
    if spoil == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    pieces: list[bytes] = []
    while data:  # split anywhere, also inside a UTF-8 sequence or a CRLF
        size = draw(st.integers(1, 64)) if spoil == "split" else len(data)
        pieces, data = [*pieces, data[:size]], data[size:]
    return Answer(f"stream-{spoil}", chunked(pieces, finish=spoil != "cut"), stream=True)
