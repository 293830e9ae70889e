"""One request's guard: its budget and both detectors, applied to every decision step."""

from __future__ import annotations

import time
from collections.abc import Callable

from greenroom.decide._budget import Budget, BudgetTracker
from greenroom.decide._context import Context
from greenroom.decide._decider import Decider
from greenroom.decide._decision import DecisionResult
from greenroom.decide._detectors import LoopDetector, NoProgressDetector
from greenroom.decide._errors import BudgetExceeded, DecisionFault
from greenroom.decide._tracing import record_event

__all__ = ["DecisionGuard"]


class DecisionGuard:
    """Runs decision steps of one request under its budget, watching for loops and stalls.

    ::

        guard = DecisionGuard(Budget(max_steps=10, deadline=30.0))
        while True:
            result = await guard.decide(decider, context)   # may raise, see below
            if result.final is not None:
                break
            context = context.add(ChatMessage.assistant(calls=result.tool_calls), *results)

    Args:
        budget: the request's limits (default :class:`Budget` defaults).
        loop: the loop detector (default ``LoopDetector()``).
        progress: the no-progress detector (default ``NoProgressDetector()``).
        clock: the monotonic clock of the deadline.
    """

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        loop: LoopDetector | None = None,
        progress: NoProgressDetector | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = BudgetTracker(budget or Budget(), clock=clock)
        self.loop = loop or LoopDetector()
        self.progress = progress or NoProgressDetector()

    async def decide(self, decider: Decider, context: Context) -> DecisionResult:
        """One guarded step: budget first, then the decider, then both detectors.

        Raises:
            BudgetExceeded: a budget limit was passed.
            DecisionLoop: the step repeats a tool call of a recent step.
            NoProgress: too many steps in a row without a new result or reply.
            ModelError: the decider failed (the step still counts).
        """
        try:
            result = await self.tracker.decide(decider, context)
            self.loop.observe(result)
            self.progress.observe(context, result)
        except BudgetExceeded as exc:
            record_event("budget", f"budget {exc.limit}", exc, **{"greenroom.limit": exc.limit})
            raise
        except DecisionFault as exc:
            record_event("fault", type(exc).__name__, exc)
            raise
        return result

    def reset_detectors(self) -> None:
        """Forget what the detectors saw (after rebuilding the context from scratch).

        The budget is not reset: it belongs to the request, not the context.
        """
        self.loop.reset()
        self.progress.reset()
