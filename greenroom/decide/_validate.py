"""Model output to decisions, validated with msgspec: anything that does not fit is an error.

Rules, each a typed :class:`InvalidModelOutput` with the raw text when broken:

* a reply cut at the output token limit (``finish_reason == "length"``) or
  by a content filter is not acted on;
* a tool call names a tool the context offers, and its arguments are a
  JSON object (an empty string counts as ``{}``, the protocol's "no
  arguments") that fits the tool's argument type when one is known;
* without tool calls, there is a non-empty reply; a refusal is invalid;
* when a structured reply is required, the reply text is JSON that
  decodes into the required type (no fences stripped, no fields guessed);
* JSON (arguments, a structured reply) nests at most :data:`MAX_DEPTH`
  arrays and objects deep, so what is accepted can be encoded again
  anywhere (a trace, a mailbox, a ledger) without hitting the recursion limit.

Validation is total: whatever the draft holds, the result is a
:class:`DecisionResult` or an :class:`InvalidModelOutput`.

Tool calls win over text: text that comes with tool calls is kept only as
the result's ``raw``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import msgspec

from greenroom.decide._decision import CallTool, DecisionResult, Reply, Usage
from greenroom.decide._errors import InvalidModelOutput
from greenroom.decide._wire import Draft, DraftCall, encode

__all__ = ["MAX_DEPTH", "json_depth", "to_result"]

MAX_DEPTH = 128
"""The deepest nesting of arrays and objects accepted in a model's JSON."""

# JSON strings, unrolled so a long one costs no backtracking; brackets inside them do not count
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")

_CUT = {
    "length": "the reply was cut at the output token limit",
    "content_filter": "a content filter cut the reply",
}


def to_result(
    draft: Draft,
    *,
    model: str,
    tools: Sequence[str],
    argument_types: Mapping[str, type],
    reply_type: type | None,
) -> DecisionResult:
    """The validated decisions of ``draft``.

    Raises:
        InvalidModelOutput: the draft breaks one of the rules above.
    """
    raw = _raw(draft)
    usage = (
        Usage(
            prompt_tokens=draft.usage[0],
            completion_tokens=draft.usage[1],
            total_tokens=draft.usage[2],
        )
        if draft.usage is not None
        else None
    )
    if draft.finish_reason in _CUT:
        raise InvalidModelOutput(
            model, _CUT[draft.finish_reason], raw, "$.choices[0].finish_reason"
        )
    if draft.calls:
        calls = tuple(_call(model, c, tools, argument_types) for c in draft.calls)
        return DecisionResult(
            decisions=calls, model=model, usage=usage, finish_reason=draft.finish_reason, raw=raw
        )
    if draft.refusal:
        raise InvalidModelOutput(
            model, "the model refused", draft.refusal, "$.choices[0].message.refusal"
        )
    text = draft.content or ""
    if not text.strip():
        raise InvalidModelOutput(
            model, "expected a reply or a tool call, got neither", raw, "$.choices[0].message"
        )
    value: object | None = None
    if reply_type is not None:
        expected = f"expected a structured reply of type {reply_type.__name__}"
        path = "$.choices[0].message.content"
        _check_depth(model, text, expected, path)
        try:
            value = msgspec.json.decode(text, type=reply_type)
        except msgspec.DecodeError as e:
            raise InvalidModelOutput(model, f"{expected}: {e}", text, path) from e
        except Exception as e:  # total: a hostile reply is invalid output, whatever it provokes
            reason = f"{expected}: {type(e).__name__}: {e}"
            raise InvalidModelOutput(model, reason, text, path) from e
    reply = Reply(text=text, value=value)
    return DecisionResult(
        decisions=(reply,), model=model, usage=usage, finish_reason=draft.finish_reason, raw=raw
    )


def _call(
    model: str, draft: DraftCall, tools: Sequence[str], argument_types: Mapping[str, type]
) -> CallTool:
    path = f"$.choices[0].message.tool_calls[{draft.index}]"
    shown = draft.arguments
    if draft.name not in tools:
        offered = ", ".join(tools) or "no tools"
        raise InvalidModelOutput(
            model,
            f"called unknown tool {draft.name!r}; the context offers: {offered}",
            f"{draft.name}({shown})",
            f"{path}.function.name",
        )
    where = f"{path}.function.arguments"
    _check_depth(model, shown, f"the arguments of {draft.name}", where)
    arguments: object
    try:
        arguments = msgspec.json.decode(shown) if shown.strip() else {}
    except msgspec.DecodeError as e:
        raise InvalidModelOutput(
            model, f"the arguments of {draft.name} are not valid JSON: {e}", shown, where
        ) from e
    except Exception as e:  # total: hostile arguments are invalid output, whatever they provoke
        raise InvalidModelOutput(
            model,
            f"the arguments of {draft.name} cannot be decoded: {type(e).__name__}: {e}",
            shown,
            where,
        ) from e
    if not isinstance(arguments, dict):
        raise InvalidModelOutput(
            model,
            f"expected the arguments of {draft.name} to be a JSON object, "
            f"got {type(arguments).__name__}",
            shown,
            where,
        )
    argument_type = argument_types.get(draft.name)
    if argument_type is not None:
        try:
            msgspec.convert(arguments, argument_type)
        except msgspec.ValidationError as e:
            raise InvalidModelOutput(
                model,
                f"the arguments of {draft.name} do not fit {argument_type.__name__}: {e}",
                shown,
                where,
            ) from e
        except Exception as e:  # a hostile value, or a __post_init__ of the type that raised
            raise InvalidModelOutput(
                model,
                f"the arguments of {draft.name} do not fit {argument_type.__name__}: "
                f"{type(e).__name__}: {e}",
                shown,
                where,
            ) from e
    return CallTool(name=draft.name, arguments=arguments, id=draft.id or f"call_{draft.index}")


def json_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in JSON ``text``, counted up to ``limit + 1``.

    Brackets inside strings do not count. The text need not be valid JSON;
    the scan never recurses, so any text can be measured.
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif depth:
            depth -= 1
    return deepest


def _check_depth(model: str, text: str, what: str, path: str) -> None:
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise InvalidModelOutput(
            model,
            f"{what}: expected JSON nested at most {MAX_DEPTH} deep, got deeper",
            text,
            path,
        )


def _raw(draft: Draft) -> str:
    if not draft.calls:
        return draft.content or draft.refusal or ""
    # The argument texts as sent, spliced in: nothing is decoded to build the raw record.
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in draft.calls]
    return encode({"content": draft.content, "tool_calls": calls}).decode()
