"""A request's :class:`Budget`, and the :class:`BudgetTracker` that enforces it."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import msgspec

from greenroom.decide._context import Context
from greenroom.decide._decider import Decider
from greenroom.decide._decision import DecisionResult
from greenroom.decide._errors import BudgetExceeded, InvalidDeciderConfig

__all__ = ["Budget", "BudgetTracker", "BudgetUsage"]


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """The most one request may use. Every limit is optional: ``None`` means no limit.

    Attributes:
        max_steps: decision steps (calls of a decider), counted when a step
            starts, failed steps included (default 20).
        max_tool_calls: tool calls decided, parallel calls each counted
            (default 50).
        max_tokens: total tokens (prompt + completion) the models reported,
            summed over the steps (default ``None``). A step whose server
            reports no usage counts 0.
        deadline: seconds from the start of the request (when its tracker
            is made) until it must end; a step still running then is
            cancelled (default 300.0).
    """

    max_steps: int | None = 20
    max_tool_calls: int | None = 50
    max_tokens: int | None = None
    deadline: float | None = 300.0

    def __post_init__(self) -> None:
        for field in ("max_steps", "max_tool_calls", "max_tokens"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidDeciderConfig(
                    f"Budget.{field}", f"expected an int >= 1 or None, got {value!r}", _FIX
                )
        if self.deadline is not None and not self.deadline > 0:
            raise InvalidDeciderConfig(
                "Budget.deadline", f"expected seconds > 0 or None, got {self.deadline!r}", _FIX
            )


_FIX = "use None for no limit"


class BudgetUsage(msgspec.Struct, frozen=True, kw_only=True):
    """What a request has used so far: steps, tool calls, tokens and seconds."""

    steps: int
    tool_calls: int
    tokens: int
    elapsed: float


class BudgetTracker:
    """Counts one request's use of its :class:`Budget`, and stops it past any limit.

    The deadline runs from the tracker's creation, on ``clock`` (monotonic).
    A limit is checked when it could be passed: steps and the deadline when
    a step starts, tool calls and tokens when a step's result is recorded.
    A result that went past a limit must not be acted on: its tool calls
    are not to be run.
    """

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._started = clock()
        self._steps = 0
        self._tool_calls = 0
        self._tokens = 0

    def usage(self) -> BudgetUsage:
        """A snapshot of what the request has used."""
        return BudgetUsage(
            steps=self._steps,
            tool_calls=self._tool_calls,
            tokens=self._tokens,
            elapsed=self._clock() - self._started,
        )

    def remaining_seconds(self) -> float | None:
        """Seconds until the deadline (0 when past it), or ``None`` without one."""
        if self.budget.deadline is None:
            return None
        return max(self.budget.deadline - (self._clock() - self._started), 0.0)

    def begin_step(self) -> None:
        """Count a step that is about to start.

        Raises:
            BudgetExceeded: ``"deadline"`` has passed, or this step would be
                one more than ``"max_steps"``.
        """
        self._check_deadline()
        limit = self.budget.max_steps
        if limit is not None and self._steps >= limit:
            raise BudgetExceeded("max_steps", self._steps + 1, limit)
        self._steps += 1

    def record(self, result: DecisionResult) -> None:
        """Count a step's tool calls and tokens.

        Raises:
            BudgetExceeded: the request is now past ``"max_tool_calls"`` or
                ``"max_tokens"``; the result must not be acted on.
        """
        self._tool_calls += len(result.tool_calls)
        if result.usage is not None:
            self._tokens += result.usage.total_tokens
        budget = self.budget
        if budget.max_tool_calls is not None and self._tool_calls > budget.max_tool_calls:
            raise BudgetExceeded("max_tool_calls", self._tool_calls, budget.max_tool_calls)
        if budget.max_tokens is not None and self._tokens > budget.max_tokens:
            raise BudgetExceeded("max_tokens", self._tokens, budget.max_tokens)

    async def decide(self, decider: Decider, context: Context) -> DecisionResult:
        """One budgeted step: count it, run ``decider`` until the deadline, record the result.

        Raises:
            BudgetExceeded: a limit was passed (see :meth:`begin_step` and
                :meth:`record`), or the deadline came while the decider ran
                (it was cancelled).
            ModelError: the decider failed; the step still counts.
        """
        self.begin_step()
        with anyio.move_on_after(self.remaining_seconds()) as scope:
            result = await decider.decide(context)
        if scope.cancelled_caught:
            self._check_deadline()
            raise BudgetExceeded("deadline", self._elapsed(), self.budget.deadline or 0.0)
        self.record(result)
        return result

    def _elapsed(self) -> float:
        return self._clock() - self._started

    def _check_deadline(self) -> None:
        deadline = self.budget.deadline
        if deadline is not None and self._elapsed() >= deadline:
            raise BudgetExceeded("deadline", self._elapsed(), deadline)
