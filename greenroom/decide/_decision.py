"""What a decider decides: the :data:`Decision` union, and the result of one decision step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.mailbox import Message

__all__ = [
    "CallTool",
    "Decision",
    "DecisionResult",
    "Delegate",
    "Failure",
    "Finish",
    "Reply",
    "Usage",
]


class CallTool(Message, frozen=True, kw_only=True):
    """Call the tool ``name`` with ``arguments``; ``id`` pairs the call with its result.

    ``arguments`` is the decoded JSON object of the call. When the decider
    knows the tool's argument type (see ``OpenAIClient(argument_types=)``),
    it has been validated against it already.
    """

    name: str
    arguments: dict[str, object] = msgspec.field(default_factory=dict)
    id: str = ""


class Reply(Message, frozen=True, kw_only=True):
    """Answer the caller. ``text`` is the reply as written; ``value`` the structured reply.

    ``value`` is set when a structured reply was required (it is then an
    instance of the required type, decoded and validated from ``text``),
    and ``None`` otherwise.
    """

    text: str = ""
    value: object | None = None


class Delegate(Message, frozen=True, kw_only=True):
    """Hand ``task`` to ``to`` (the name of an actor or agent) and wait for its answer."""

    to: str
    task: str


class Finish(Message, frozen=True, kw_only=True):
    """The request is done; nothing more to say. ``reason`` is for the trace."""

    reason: str = "done"


Decision: TypeAlias = CallTool | Reply | Delegate | Finish
"""One thing a decider decided. A tagged union: it decodes from JSON or msgpack."""


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Tokens one model call used, as the server reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A model that was tried and failed before the one that answered."""

    model: str
    error: ErrorInfo


class DecisionResult(msgspec.Struct, frozen=True, kw_only=True):
    """The result of one decision step.

    Attributes:
        decisions: what was decided, in order. Either one ``Reply``,
            ``Delegate`` or ``Finish``, or one or more ``CallTool`` (parallel
            tool calls: run them all, then decide again). Never empty.
        model: who answered (a model name, or the rules decider's name).
        usage: tokens used, or ``None`` when the server did not report them
            (a budget then counts no tokens for this step).
        finish_reason: the model's ``finish_reason`` (``"stop"``,
            ``"tool_calls"``...), ``None`` for deciders without one.
        raw: the raw output text the decisions were parsed from, if any.
        failures: models a router tried before ``model`` answered, with why.
    """

    decisions: tuple[Decision, ...]
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    raw: str | None = None
    failures: tuple[Failure, ...] = ()

    @property
    def tool_calls(self) -> tuple[CallTool, ...]:
        """The tool calls decided (empty when the step decided something else)."""
        return tuple(d for d in self.decisions if isinstance(d, CallTool))

    @property
    def final(self) -> Reply | Delegate | Finish | None:
        """The one non-tool decision, or ``None`` when the step decided tool calls."""
        for d in self.decisions:
            if not isinstance(d, CallTool):
                return d
        return None

    @classmethod
    def of(
        cls, decision: Decision | Sequence[CallTool], *, model: str, usage: Usage | None = None
    ) -> DecisionResult:
        """A result holding ``decision`` (or several parallel tool calls).

        Raises:
            ValueError: ``decision`` is an empty sequence, or holds something
                other than ``CallTool``.
        """
        if isinstance(decision, CallTool | Reply | Delegate | Finish):
            return cls(decisions=(decision,), model=model, usage=usage)
        calls = tuple(decision)
        if not calls or not all(isinstance(c, CallTool) for c in calls):
            raise ValueError(
                "several decisions of one step must be one or more CallTool (parallel calls), "
                f"got {[type(c).__name__ for c in calls]}"
            )
        return cls(decisions=calls, model=model, usage=usage)
