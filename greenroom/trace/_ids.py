"""Identifiers and the current span, the lowest layer of tracing.

Ids are 63-bit ints: a random per-process base plus a counter. Unique
across processes with overwhelming probability (and across a ``fork``, which
draws a new base), and several times cheaper than a uuid4 or a formatted
string, which matters because every envelope carries one. They fit
OpenTelemetry's 64-bit span ids as they are; :func:`format_id` shows one as
16 hex digits.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from typing import Protocol

__all__ = ["SpanCarrier", "attempt_span_id", "current_span", "format_id", "new_id"]


_MASK = (1 << 63) - 1


def _fresh_counter() -> itertools.count[int]:
    # Leave room below 2**63 for 2**40 ids before the counter wraps the mask.
    base = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return itertools.count(base | 1)


_counter = _fresh_counter()


def _reseed() -> None:
    global _counter
    _counter = _fresh_counter()


os.register_at_fork(after_in_child=_reseed)


def new_id() -> int:
    """A new id: unique across processes, positive, below 2**63."""
    return next(_counter) & _MASK


_SPAN_STEP = 0x9E3779B97F4A7C15  # odd, so the attempts of one message never collide


def attempt_span_id(message_id: int, attempt: int) -> int:
    """The span id of handling delivery ``attempt`` of a message: its id on attempt 1."""
    if attempt == 1:
        return message_id
    return (message_id + (attempt - 1) * _SPAN_STEP) & _MASK


def format_id(value: int) -> str:
    """An id as 16 hex digits, the way logs and traces show it."""
    return f"{value:016x}"


class SpanCarrier(Protocol):
    """Anything that names the span being worked on: an envelope, a span."""

    @property
    def trace_id(self) -> int: ...

    @property
    def span_id(self) -> int: ...


current_span: ContextVar[SpanCarrier | None] = ContextVar("greenroom_current_span", default=None)
"""The span the running code works for; set by an actor for each message it handles.

Messages sent while it is set join its trace as its children.
"""
