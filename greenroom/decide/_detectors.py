"""Detectors of a decider that misbehaves: one that loops, one that makes no progress.

Each observes the steps of one request and raises a typed
:class:`DecisionFault` when its rule is broken. They hold state per
request (or per worker incarnation): make new ones, or :meth:`reset`, when
the context is rebuilt from scratch.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque

import msgspec

from greenroom.decide._context import Context
from greenroom.decide._decision import CallTool, DecisionResult
from greenroom.decide._errors import DecisionLoop, InvalidDeciderConfig, NoProgress

__all__ = ["LoopDetector", "NoProgressDetector"]


def _key(call: CallTool) -> tuple[str, str]:
    return call.name, msgspec.json.encode(call.arguments, order="sorted").decode()


class LoopDetector:
    """Catches the same tool decided with the same arguments again within a window.

    Two calls are the same when their tool names match and their arguments
    encode to the same JSON with sorted keys (call ids do not matter).

    Args:
        window: how many of the latest decision steps are compared,
            the current one included (default 4); steps that decide no tool
            call count too.
        max_repeats: how often a call may be decided *again* within the
            window before it is a loop (default 0: any repeat is a loop;
            1 allows one retry after, say, a transient tool error).
    """

    def __init__(self, *, window: int = 4, max_repeats: int = 0) -> None:
        if not isinstance(window, int) or window < 1:
            raise InvalidDeciderConfig(
                "LoopDetector.window", f"expected an int >= 1, got {window!r}", "pass steps >= 1"
            )
        if not isinstance(max_repeats, int) or max_repeats < 0:
            raise InvalidDeciderConfig(
                "LoopDetector.max_repeats",
                f"expected an int >= 0, got {max_repeats!r}",
                "pass 0 to allow no repeat",
            )
        self.window = window
        self.max_repeats = max_repeats
        self._steps: deque[tuple[tuple[str, str], ...]] = deque(maxlen=window - 1)

    def observe(self, result: DecisionResult) -> None:
        """Take one step's result.

        Raises:
            DecisionLoop: a tool call of ``result`` was decided more than
                ``max_repeats`` times before within the window. The step is
                not remembered, so the same step observed again raises again.
        """
        keys = tuple(_key(c) for c in result.tool_calls)
        counts = Counter(k for step in self._steps for k in step)
        for key in keys:
            counts[key] += 1
            if counts[key] > self.max_repeats + 1:
                raise DecisionLoop(key[0], key[1], counts[key], self.window)
        if self.window > 1:
            self._steps.append(keys)

    def reset(self) -> None:
        """Forget every step seen (for a fresh context)."""
        self._steps.clear()


class NoProgressDetector:
    """Catches steps that go by without a new tool result or a reply.

    A step makes progress when its context holds a tool result not seen in
    any earlier step (same tool name and same content count as seen), or
    when it decides a ``Reply``, ``Delegate`` or ``Finish``.

    Args:
        max_idle_steps: consecutive steps without progress that make a
            fault (default 3).
    """

    def __init__(self, *, max_idle_steps: int = 3) -> None:
        if not isinstance(max_idle_steps, int) or max_idle_steps < 1:
            raise InvalidDeciderConfig(
                "NoProgressDetector.max_idle_steps",
                f"expected an int >= 1, got {max_idle_steps!r}",
                "pass steps >= 1",
            )
        self.max_idle_steps = max_idle_steps
        self._seen: set[bytes] = set()
        self._idle = 0

    @property
    def idle_steps(self) -> int:
        """Consecutive steps without progress, so far."""
        return self._idle

    def observe(self, context: Context, result: DecisionResult) -> None:
        """Take one step: the context it decided on, and its result.

        Raises:
            NoProgress: this step made ``max_idle_steps`` steps in a row
                without progress.
        """
        fresh = False
        for message in context.messages:
            if message.role != "tool":
                continue
            digest = hashlib.blake2b(
                f"{message.name}\0{message.content}".encode(), digest_size=16
            ).digest()
            if digest not in self._seen:
                self._seen.add(digest)
                fresh = True
        if fresh or result.final is not None:
            self._idle = 0
            return
        self._idle += 1
        if self._idle >= self.max_idle_steps:
            raise NoProgress(self._idle, self.max_idle_steps)

    def reset(self) -> None:
        """Forget every result seen and the idle count (for a fresh context)."""
        self._seen.clear()
        self._idle = 0
