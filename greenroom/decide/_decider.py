"""The :class:`Decider` protocol: a prepared context in, a decision step's result out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from greenroom.decide._context import Context
from greenroom.decide._decision import DecisionResult

__all__ = ["Decider"]


@runtime_checkable
class Decider(Protocol):
    """Maps a prepared :class:`Context` to the next step.

    ``decide`` returns a :class:`DecisionResult`, not a bare ``Decision``:
    the result carries one decision, or several parallel ``CallTool``
    decisions, together with who answered and the tokens used, which the
    budget, the router and the trace need. ``DecisionResult.of(decision,
    model=...)`` wraps a bare decision.

    A decider raises a :class:`~greenroom.decide.ModelError` when it cannot
    give a usable decision (a router then tries its next model); it never
    returns a guess. It is a cancellation point, and keeps no state between
    calls that would change its answer to the same context, apart from a
    router's cool-downs after a rate limit.
    """

    @property
    def name(self) -> str:
        """Who decides: the model name, or the rules decider's name. Recorded on results."""
        ...

    async def decide(self, context: Context) -> DecisionResult:
        """Decide the next step for ``context``."""
        ...
