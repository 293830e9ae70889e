"""The chat-completions wire format: the request body, the reply, and SSE stream assembly.

Only what the protocol defines is relied on, so one client works against
OpenAI, Ollama, vLLM and llama.cpp server:

* tool call arguments arrive as a JSON *string*, in a stream possibly split
  across chunks, each fragment tagged with the call's ``index``;
* several tool calls can be decided at once, told apart by ``index``;
* ``usage`` may come only in the last chunk, one with no choices
  (``stream_options.include_usage``), or not at all;
* a stream ends with ``data: [DONE]``; a reply is complete once its
  ``finish_reason`` is set.

Unknown fields are ignored, so vendor extensions do not break decoding.
Decoding is total: any text becomes a :class:`Draft` or a typed
:class:`ModelError` (JSON nested past the interpreter's recursion limit, a
wrong type anywhere, token counts that are negative or absurd), never
another exception. Tool-call arguments are kept as JSON text, whether the
server sent a string or an object, and decoded only when validated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from greenroom.decide._config import ModelConfig
from greenroom.decide._context import ChatMessage, Context, tool_name
from greenroom.decide._errors import InvalidModelOutput, ModelUnavailable

__all__ = [
    "Draft",
    "DraftCall",
    "SseDecoder",
    "StreamAssembler",
    "build_request",
    "encode",
    "parse_body",
    "schema_of",
]


_NO_ARGUMENTS = msgspec.Raw(b"")
_MAX_TOKENS = 2**53  # more than any model's context; a larger count is a broken server
_Tokens = Annotated[int, msgspec.Meta(ge=0, le=_MAX_TOKENS)]


class _Function(msgspec.Struct):
    name: str | None = None
    # a JSON string (the protocol), or a JSON object (some servers): kept as text
    arguments: msgspec.Raw = _NO_ARGUMENTS


class _ToolCall(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: _Tokens | None = 0
    completion_tokens: _Tokens | None = 0
    total_tokens: _Tokens | None = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: msgspec.Raw = _NO_ARGUMENTS  # kept as text: it is only ever quoted


_decode_completion = msgspec.json.Decoder(_Completion)
_encoder = msgspec.json.Encoder()


@dataclass
class DraftCall:
    """One tool call as received, before validation.

    ``arguments`` is JSON text: the argument string as sent, or (when the
    server sent a JSON value in its place) that value's JSON text, and then
    ``as_value`` is true.
    """

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    as_value: bool = False


@dataclass
class Draft:
    """A reply as received, before validation: what the model wrote, and the usage."""

    content: str | None = None
    refusal: str | None = None
    calls: list[DraftCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: tuple[int, int, int] | None = None


def build_request(
    config: ModelConfig, context: Context, reply_schema: Mapping[str, object] | None, name: str
) -> dict[str, object]:
    """The JSON body of a chat-completions request for ``context``.

    ``reply_schema`` is the JSON Schema of a required structured reply
    (sent as ``response_format`` when the config allows), ``name`` its name.
    """
    body: dict[str, object] = {"model": config.model, "messages": _messages(context)}
    if context.tools:
        for tool in context.tools:
            tool_name(tool)  # refuse a malformed definition before sending anything
        body["tools"] = [dict(t) for t in context.tools]
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.max_output_tokens is not None:
        body["max_tokens"] = config.max_output_tokens
    if reply_schema is not None and config.structured_output:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": dict(reply_schema)},
        }
    if config.stream:
        body["stream"] = True
        if config.stream_usage:
            body["stream_options"] = {"include_usage": True}
    body.update(config.extra_body)
    return body


def _messages(context: Context) -> list[dict[str, object]]:
    out = [_message(m) for m in context.messages]
    if context.facts:
        facts = _encoder.encode(dict(sorted(context.facts.items()))).decode()
        at = next((i for i, m in enumerate(context.messages) if m.role != "system"), len(out))
        out.insert(at, {"role": "system", "content": f"Known facts (JSON): {facts}"})
    return out


def _message(m: ChatMessage) -> dict[str, object]:
    out: dict[str, object] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": _encoder.encode(c.arguments).decode()},
            }
            for c in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


def parse_body(model: str, body: str) -> Draft:
    """The draft of a non-streamed reply.

    Raises:
        InvalidModelOutput: the body is not chat-completion JSON, or has no choice.
        ModelUnavailable: the body is an error object.
    """
    completion = _decode(model, body, "$")
    if not completion.choices:
        raise InvalidModelOutput(model, "expected at least one choice, got none", body, "$.choices")
    choice = completion.choices[0]
    message = choice.message or _Message()
    draft = Draft(
        content=message.content, refusal=message.refusal, finish_reason=choice.finish_reason
    )
    for i, call in enumerate(message.tool_calls or ()):
        function = call.function or _Function()
        arguments, as_value = _arguments(model, function.arguments, body)
        draft.calls.append(DraftCall(i, call.id or "", function.name or "", arguments, as_value))
    draft.usage = _usage(completion.usage)
    return draft


def _decode(model: str, text: str, path: str) -> _Completion:
    try:
        completion = _decode_completion.decode(text)
    except msgspec.DecodeError as e:
        raise InvalidModelOutput(
            model, f"expected a chat-completion JSON object: {e}", text, path
        ) from e
    except RecursionError as e:
        raise InvalidModelOutput(
            model, "expected a chat-completion JSON object, got JSON nested too deeply", text, path
        ) from e
    except Exception as e:  # decoding is total: whatever else the text provokes is invalid output
        raise InvalidModelOutput(
            model, f"expected a chat-completion JSON object: {type(e).__name__}: {e}", text, path
        ) from e
    error = bytes(completion.error)
    if error and error != b"null":
        raise ModelUnavailable(model, f"the server sent an error: {_short(error)}")
    return completion


def _arguments(model: str, raw: msgspec.Raw, body: str) -> tuple[str, bool]:
    """The JSON text of a call's arguments, and whether it was sent as a value, not a string."""
    data = bytes(raw)
    if not data or data == b"null":
        return "", False
    if data[:1] != b'"':
        return data.decode("utf-8", errors="replace"), True
    try:
        return msgspec.json.decode(data, type=str), False
    except Exception as e:  # cannot happen for a span msgspec has parsed; stay total anyway
        raise InvalidModelOutput(
            model, f"the arguments are not a JSON string: {e}", body, "$.choices"
        ) from e


def _usage(usage: _Usage | None) -> tuple[int, int, int] | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return (prompt, completion, usage.total_tokens or prompt + completion)


def _short(value: bytes, limit: int = 300) -> str:
    text = value.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


_LINE_END = re.compile(r"\r\n|\r|\n")


class SseDecoder:
    """Server-sent events from decoded text: yields each event's ``data``, per the SSE spec.

    Lines end in CRLF, LF or CR, also across chunks; ``data:`` lines of one
    event are joined with newlines; comments and other fields are ignored;
    an event is dispatched at a blank line, and an unfinished event at the
    end of the stream is dropped.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._partial = ""

    def feed(self, text: str) -> list[str]:
        """Take the next piece of the stream; return the data of every event it completes."""
        buffer = self._partial + text
        held = ""
        if buffer.endswith("\r"):  # maybe the first half of a CRLF split across chunks
            buffer, held = buffer[:-1], "\r"
        lines = _LINE_END.split(buffer)
        self._partial = lines.pop() + held
        events: list[str] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
        return events


class StreamAssembler:
    """Assembles streamed chunks into one :class:`Draft`.

    Content fragments are concatenated; tool call fragments are grouped by
    their ``index`` and their argument strings concatenated in arrival
    order; the first non-empty id and name of a call are kept.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._draft = Draft()
        self._content: list[str] = []
        self._calls: dict[int, DraftCall] = {}
        self._arguments: dict[int, list[str]] = {}
        self.done = False

    def feed(self, data: str) -> None:
        """Take one event's data: a chunk, or ``[DONE]``.

        Raises:
            InvalidModelOutput: the chunk is not chat-completion-chunk JSON.
            ModelUnavailable: the chunk is an error object.
        """
        if data.strip() == "[DONE]":
            self.done = True
            return
        chunk = _decode(self._model, data, "$ (stream chunk)")
        if chunk.usage is not None:
            self._draft.usage = _usage(chunk.usage)
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # n > 1 is never requested; ignore other choices
            if choice.finish_reason is not None:
                self._draft.finish_reason = choice.finish_reason
            delta = choice.delta or choice.message
            if delta is not None:
                self._delta(delta)

    def _delta(self, delta: _Message) -> None:
        if delta.content:
            self._content.append(delta.content)
        if delta.refusal:
            self._draft.refusal = (self._draft.refusal or "") + delta.refusal
        for position, call in enumerate(delta.tool_calls or ()):
            index = call.index if call.index is not None else position
            draft = self._calls.setdefault(index, DraftCall(index))
            parts = self._arguments.setdefault(index, [])
            if call.id and not draft.id:
                draft.id = call.id
            function = call.function or _Function()
            if function.name and not draft.name:
                draft.name = function.name
            arguments, as_value = _arguments(self._model, function.arguments, "")
            if as_value:
                draft.arguments, draft.as_value = arguments, True
            elif arguments:
                parts.append(arguments)

    @property
    def finished(self) -> bool:
        """Whether the reply is complete (its ``finish_reason`` arrived)."""
        return self._draft.finish_reason is not None

    def result(self) -> Draft:
        """The assembled draft."""
        draft = self._draft
        draft.content = "".join(self._content) if self._content else None
        draft.calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.as_value:
                call.arguments = "".join(self._arguments[index])
            draft.calls.append(call)
        return draft


def schema_of(reply_type: type) -> dict[str, object]:
    """The JSON Schema of ``reply_type`` with its root inlined (servers want an object root)."""
    schema = msgspec.json.schema(reply_type)
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and isinstance(defs, dict):
        root = dict(defs[ref.rsplit("/", 1)[-1]])
        if len(defs) > 1:
            root["$defs"] = defs
        return root
    return schema


def encode(value: object) -> bytes:
    """JSON bytes of ``value``."""
    return _encoder.encode(value)
