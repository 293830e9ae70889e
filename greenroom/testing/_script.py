"""What a :class:`ScriptedModelServer` answers: scripted replies and failures, rendered as the
OpenAI chat-completions protocol renders them (a JSON body, or SSE chunks)."""

from __future__ import annotations

import itertools
from typing import TypeAlias

import msgspec

__all__ = [
    "RecordedRequest",
    "ScriptItem",
    "ScriptedError",
    "ScriptedMalformed",
    "ScriptedReply",
    "ScriptedToolCall",
    "ScriptedUsage",
]

_json = msgspec.json.Encoder()


class ScriptedToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the scripted model makes.

    ``arguments`` is sent as its JSON encoding, or verbatim when it is a
    ``str`` (to script arguments that are not valid JSON). ``id`` defaults
    to ``"call_<n>"``, ``n`` its position in the reply.
    """

    name: str
    arguments: dict[str, object] | str = msgspec.field(default_factory=dict)
    id: str | None = None


class ScriptedUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts reported with a reply; ``total_tokens`` is their sum."""

    prompt_tokens: int = 10
    completion_tokens: int = 5


class ScriptedReply(msgspec.Struct, frozen=True, kw_only=True):
    """A successful answer: text, tool calls, or both.

    Attributes:
        content: the reply text (``None`` for tool calls only).
        tool_calls: the tool calls, in order (parallel calls when several).
        finish_reason: default ``"tool_calls"`` with tool calls, else ``"stop"``.
        usage: the usage reported; in a stream only when the request asks for
            it with ``stream_options.include_usage`` (as OpenAI does), in its
            own last chunk. ``None`` reports none.
        fragment: characters per streamed fragment of content and arguments
            (default 4), so a stream splits them across chunks.
        interleave: stream the argument fragments of parallel calls
            round-robin instead of one call after the other.
        delay: seconds the server waits before answering (a slow reply).
        truncate_after: cut the connection after this many SSE events of a
            stream, or this many bytes of a JSON body (``None``: send it all).
    """

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    finish_reason: str | None = None
    usage: ScriptedUsage | None = ScriptedUsage()
    fragment: int = 4
    interleave: bool = False
    delay: float = 0.0
    truncate_after: int | None = None


class ScriptedError(msgspec.Struct, frozen=True, kw_only=True):
    """An error answer: ``status`` with an OpenAI-style ``{"error": {...}}`` body.

    ``retry_after`` is sent as the ``Retry-After`` header (whole seconds
    when it is an ``int``); ``headers`` are sent as well. ``delay`` seconds
    pass before the answer.
    """

    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    delay: float = 0.0


class ScriptedMalformed(msgspec.Struct, frozen=True, kw_only=True):
    """A 200 answer whose body (or, for a stream, whose one SSE event) is ``body`` verbatim."""

    body: str = '{"choices": [{"index": 0, "message": '
    delay: float = 0.0


ScriptItem: TypeAlias = ScriptedReply | ScriptedError | ScriptedMalformed
"""One scripted answer, used for one request."""


class RecordedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request the server received. Header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


def _calls(reply: ScriptedReply) -> list[tuple[str, str, str]]:
    out = []
    for n, call in enumerate(reply.tool_calls):
        arguments = call.arguments
        text = arguments if isinstance(arguments, str) else _json.encode(arguments).decode()
        out.append((call.id or f"call_{n}", call.name, text))
    return out


def _finish_reason(reply: ScriptedReply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _usage(usage: ScriptedUsage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def completion_body(reply: ScriptedReply, model: str, number: int, created: int) -> bytes:
    """The JSON body of a non-streamed chat completion."""
    message: dict[str, object] = {"role": "assistant", "content": reply.content, "refusal": None}
    calls = _calls(reply)
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in calls
        ]
    body: dict[str, object] = {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(reply),
            }
        ],
    }
    if reply.usage is not None:
        body["usage"] = _usage(reply.usage)
    return _json.encode(body)


def _pieces(text: str, size: int) -> list[str]:
    size = max(size, 1)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(
    reply: ScriptedReply, model: str, number: int, created: int, include_usage: bool
) -> list[bytes]:
    """The SSE events of a streamed chat completion, ``data: [DONE]`` last."""
    base = {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    def chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body: dict[str, object] = {**base, "choices": [choice]}
        if include_usage:
            body["usage"] = None
        return _event(_json.encode(body))

    calls = _calls(reply)
    events = [chunk({"role": "assistant", "content": None if calls else ""})]
    if reply.content:
        events.extend(chunk({"content": p}) for p in _pieces(reply.content, reply.fragment))
    heads = [
        chunk({"tool_calls": [_call_delta(i, {"name": name, "arguments": ""}, cid)]})
        for i, (cid, name, _) in enumerate(calls)
    ]
    fragments = [
        [
            chunk({"tool_calls": [_call_delta(i, {"arguments": p})]})
            for p in _pieces(args, reply.fragment)
        ]
        for i, (_, _, args) in enumerate(calls)
    ]
    if reply.interleave:
        events.extend(heads)
        for row in itertools.zip_longest(*fragments):
            events.extend(e for e in row if e is not None)
    else:
        for head, parts in zip(heads, fragments, strict=True):
            events.append(head)
            events.extend(parts)
    events.append(chunk({}, _finish_reason(reply)))
    if include_usage and reply.usage is not None:
        events.append(_event(_json.encode({**base, "choices": [], "usage": _usage(reply.usage)})))
    events.append(_event(b"[DONE]"))
    return events


def _call_delta(index: int, function: dict[str, object], cid: str | None = None) -> object:
    delta: dict[str, object] = {"index": index, "function": function}
    if cid is not None:
        delta["id"] = cid
        delta["type"] = "function"
    return delta


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def error_body(error: ScriptedError) -> bytes:
    """The OpenAI-style JSON body of an error answer."""
    kind = "rate_limit_exceeded" if error.status == 429 else "server_error"
    return _json.encode(
        {"error": {"message": error.message, "type": kind, "param": None, "code": kind}}
    )


def malformed_event(body: str) -> bytes:
    """One SSE event holding ``body`` verbatim."""
    return _event(body.encode())
