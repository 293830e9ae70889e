"""What a worker does after its supervisor restarted it for a decision fault."""

from __future__ import annotations

from typing import Literal

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.decide._errors import InvalidDeciderConfig

__all__ = ["FaultAction", "FaultPolicy"]

FaultAction = Literal["fresh_context", "fallback", "escalate"]
"""``fresh_context``: rebuild the context and decide again with the same model;
``fallback``: decide with the next model; ``escalate``: hand the request to a
person (through an approval message) instead of deciding again."""

_FAULTS = frozenset({"greenroom.DecisionLoop", "greenroom.NoProgress"})
_ACTIONS = ("fresh_context", "fallback", "escalate")


class FaultPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The steps a worker takes after repeated decision faults, in order.

    Decision faults (:class:`DecisionLoop`, :class:`NoProgress`) are raised
    out of the worker's handler, so its supervisor handles them like any
    crash: they count toward its restart intensity, the worker is restarted
    and the request's message retried. The fresh instance's ``on_restart``
    asks the policy what to do, given how often the actor has failed
    (``self.ctx.failures``)::

        async def on_restart(self, error: gr.ErrorInfo) -> None:
            if POLICY.is_fault(error):
                match POLICY.action(self.ctx.failures):
                    case "fallback": self.model_index += 1
                    case "escalate": self.escalated = True

    Attributes:
        steps: the action for the first, second, ... fault; past the end, the
            last one repeats (default: fresh context, then fallback, then
            escalate).
    """

    steps: tuple[FaultAction, ...] = ("fresh_context", "fallback", "escalate")

    def __post_init__(self) -> None:
        if not self.steps or any(step not in _ACTIONS for step in self.steps):
            raise InvalidDeciderConfig(
                "FaultPolicy.steps",
                f"expected a non-empty tuple of {_ACTIONS}, got {self.steps!r}",
                "name one action per fault, in order",
            )

    def action(self, faults: int) -> FaultAction:
        """The action after the ``faults``-th fault (counting from 1)."""
        return self.steps[min(max(faults, 1), len(self.steps)) - 1]

    @staticmethod
    def is_fault(error: ErrorInfo) -> bool:
        """Whether ``error`` (as an actor's ``on_restart`` gets it) is a decision fault."""
        return error.type in _FAULTS
