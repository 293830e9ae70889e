"""The messages a watch delivers: StateChanged, WatchGap, and the Sink that takes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from greenroom.mailbox._message import Message

__all__ = ["GapReason", "Sink", "StateChanged", "WatchGap"]

GapReason = Literal["delivery_failed", "replay_unavailable", "version_skipped"]


class StateChanged(Message, frozen=True, kw_only=True):
    """A key of a watched scope was written (or deleted, ``deleted=True``).

    ``value`` is the value written, of the scope's type (``None`` for a
    delete). After crossing a durable mailbox it arrives as plain msgpack
    data: read the key again for a typed value, which also records it in a
    read set. Do not mutate ``value``: the writer's returned record shares it.
    """

    scope: str
    key: str
    version: int
    deleted: bool = False
    value: object = None
    updated_at: float
    updated_by: str | None = None
    trace_id: str | None = None


class WatchGap(Message, frozen=True, kw_only=True):
    """The watcher may have missed versions: re-read what it watches.

    ``key`` is the watched key, or ``None`` for a prefix watch (then
    ``prefix`` is set and every key under it must be re-read). ``reason``:
    ``"delivery_failed"`` (the sink raised, e.g. a full mailbox),
    ``"replay_unavailable"`` (the watch asked to start from a version the
    backend cannot replay from), or ``"version_skipped"`` (a version arrived
    that is not the next one, e.g. written by another process, or versions
    were lost before reaching the store, e.g. trimmed from a change log).
    """

    scope: str
    key: str | None = None
    prefix: str | None = None
    reason: GapReason


Sink = Callable[[StateChanged | WatchGap], None]
"""A plain, non-blocking function that takes each message of a watch."""
