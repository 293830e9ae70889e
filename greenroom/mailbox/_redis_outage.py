"""Outage: whether the Redis of a pump is down, the backoff of its retries, and their log.

One warning when an outage starts, one info when it ends, a debug record
per failed retry (with its ``delay``), all bound to ``event`` and ``prefix``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.trace._logging import logger

__all__ = ["BACKOFF_CAP", "BACKOFF_FIRST", "Outage"]

BACKOFF_FIRST = 0.05  # seconds before the first retry of an outage
BACKOFF_CAP = 2.0  # the longest wait between retries


class Outage:
    """The state of one pump's connection to Redis: up, or down since a failure."""

    __slots__ = ("_label", "_since", "delay", "failure", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._label = f"redis (prefix {prefix})"
        self.failure: MailboxUnavailable | None = None  # set while down
        self.delay = 0.0  # seconds before the next retry
        self._since = 0.0

    @property
    def down(self) -> bool:
        """Whether the last cycle failed and no retry has succeeded since."""
        return self.failure is not None

    def fail(self, error: Exception) -> None:
        """A cycle failed: start the outage (0.05 s to the first retry) or double the delay."""
        failure = MailboxUnavailable(self._label, "reach redis", str(error) or repr(error))
        failure.__cause__ = error
        first = self.failure is None
        self.failure = failure
        if first:
            self._since = time.monotonic()
            self.delay = BACKOFF_FIRST
            logger.bind(event="redis_unavailable", prefix=self.prefix).warning(
                "{label} failed: {error}; puts fail with MailboxUnavailable, acks are kept, "
                "retrying with backoff up to {cap} s",
                label=self._label,
                error=failure.reason,
                cap=BACKOFF_CAP,
            )
        else:
            self.delay = min(BACKOFF_CAP, self.delay * 2)
        logger.bind(event="redis_retry", prefix=self.prefix, delay=self.delay).debug(
            "{label} still failing: {error}; next try in {delay:.2f} s",
            label=self._label,
            error=failure.reason,
            delay=self.delay,
        )

    def end(self) -> None:
        """A retry succeeded: the outage is over, the backoff starts afresh next time."""
        self.failure = None
        self.delay = 0.0
        logger.bind(event="redis_recovered", prefix=self.prefix).info(
            "{label} answers again after {seconds:.2f} s",
            label=self._label,
            seconds=time.monotonic() - self._since,
        )

    def error(self, operation: str) -> MailboxUnavailable:
        """A fresh error for a caller refused during the outage, chained to its cause."""
        failure = self.failure
        reason = failure.reason if failure is not None else "redis is unreachable"
        error = MailboxUnavailable(self._label, operation, reason)
        error.__cause__ = failure.__cause__ if failure is not None else None
        return error

    async def wait(self, event: asyncio.Event, closing: Callable[[], bool]) -> None:
        """Wait ``delay`` seconds, or less once ``closing()``; other wakes do not end it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delay
        while not closing():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return
