"""A deterministic, offline decider: a small table of rules, predicate to decision.

::

    rules = RulesDecider([
        Rule(tool_returned("get_weather"), lambda ctx: Reply(text=last_tool_result(ctx) or "")),
        Rule(user_says("weather"), CallTool(name="get_weather", arguments={"city": "Paris"})),
    ], default=Finish(reason="nothing to do"))

The first rule whose predicate holds decides. It is the embedded default of
the examples and tests: no network, the same answer for the same context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import msgspec

from greenroom.decide._context import Context
from greenroom.decide._decision import CallTool, Decision, DecisionResult, Delegate, Finish, Reply
from greenroom.decide._errors import NoRuleMatched
from greenroom.decide._tracing import decision_span, record_result

__all__ = [
    "Predicate",
    "Rule",
    "RulesDecider",
    "Then",
    "always",
    "last_tool_result",
    "tool_returned",
    "user_says",
]

Predicate: TypeAlias = Callable[[Context], bool]
"""Whether a rule applies to a context. Must not block or have side effects."""

Then: TypeAlias = Decision | Sequence[CallTool] | Callable[[Context], Decision | Sequence[CallTool]]
"""What a rule decides: a decision, parallel tool calls, or a function of the context to either."""


@dataclass(frozen=True)
class Rule:
    """When ``when`` holds for a context, decide ``then``. ``name`` is for errors and traces."""

    when: Predicate
    then: Then
    name: str = ""


class RulesDecider:
    """Decides by the first matching :class:`Rule`; deterministic and offline.

    Tool calls decided without an ``id`` get one that is unique within the
    conversation and the same on every run: ``"<name>-<n>"``, ``n`` counting
    the tool calls already in the context.
    """

    def __init__(
        self, rules: Sequence[Rule], *, default: Then | None = None, name: str = "rules"
    ) -> None:
        self._rules = tuple(rules)
        self._default = default
        self._name = name

    @property
    def name(self) -> str:
        """The decider's name, recorded as the ``model`` of its results."""
        return self._name

    async def decide(self, context: Context) -> DecisionResult:
        """The decision of the first rule that matches ``context``, else the default.

        Raises:
            NoRuleMatched: no rule matched and there is no default.
        """
        with decision_span(f"rules {self._name}", self._name, "rules", context, None) as span:
            result = self._decide(context)
            record_result(span, result)
        return result

    def _decide(self, context: Context) -> DecisionResult:
        then = next((r.then for r in self._rules if r.when(context)), self._default)
        if then is None:
            last = context.messages[-1] if context.messages else None
            shown = f"{last.role}: {last.content!r}" if last is not None else "none"
            raise NoRuleMatched(self._name, len(self._rules), shown)
        decided = then(context) if callable(then) else then
        if isinstance(decided, CallTool):
            decided = [decided]
        if isinstance(decided, Reply | Delegate | Finish):
            return DecisionResult.of(decided, model=self._name)
        return DecisionResult.of(self._with_ids(context, decided), model=self._name)

    def _with_ids(self, context: Context, calls: Sequence[CallTool]) -> list[CallTool]:
        made = sum(len(m.tool_calls) for m in context.messages)
        return [
            c if c.id else msgspec.structs.replace(c, id=f"{self._name}-{made + i}")
            for i, c in enumerate(calls)
        ]


def user_says(text: str) -> Predicate:
    """The last message is from the user and contains ``text`` (ignoring case)."""
    wanted = text.casefold()

    def predicate(context: Context) -> bool:
        last = context.messages[-1] if context.messages else None
        return (
            last is not None and last.role == "user" and wanted in (last.content or "").casefold()
        )

    return predicate


def tool_returned(name: str) -> Predicate:
    """The last message is the result of a call to the tool ``name``."""

    def predicate(context: Context) -> bool:
        last = context.messages[-1] if context.messages else None
        return last is not None and last.role == "tool" and last.name == name

    return predicate


def always(context: Context) -> bool:
    """Always holds: for a last, catch-all rule."""
    return True


def last_tool_result(context: Context) -> str | None:
    """The content of the latest tool result in ``context``, or ``None``."""
    for message in reversed(context.messages):
        if message.role == "tool":
            return message.content
    return None
