"""Identifiers and the current span, the lowest layer of tracing.

Ids are a per-process random prefix and a counter: unique across processes
(and across a ``fork``, which draws a new prefix), and far cheaper than a
uuid4 per message, which matters because every envelope carries one.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from typing import Protocol

__all__ = ["SpanCarrier", "current_span", "new_id"]


def _fresh_prefix() -> str:
    return os.urandom(6).hex()


_prefix = _fresh_prefix()
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = _fresh_prefix()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new id, unique across processes: 12 hex digits of prefix, then a counter."""
    return f"{_prefix}{next(_counter):x}"


class SpanCarrier(Protocol):
    """Anything that names the span being worked on: an envelope, a span."""

    @property
    def trace_id(self) -> str: ...

    @property
    def span_id(self) -> str: ...


current_span: ContextVar[SpanCarrier | None] = ContextVar("greenroom_current_span", default=None)
"""The span the running code works for; set by an actor for each message it handles.

Messages sent while it is set join its trace as its children.
"""
