"""Death watch: ``ctx.watch(ref)`` and the :class:`Terminated` message it brings.

The rules, after Akka/Pekko's DeathWatch and Erlang's monitors, are on
``ActorContext.watch``. One difference from Akka, on purpose: a watcher
without a handler for :class:`Terminated` is refused at ``watch``
(:class:`UsageError`, where the fix is plain) instead of failing with
``DeathPactException`` when the message comes; a watcher that wants the
death pact raises in its handler.

State lives on the cells (``Cell.watches``, made on first use), not in a
registry: a cell that is never watched and never fails pays one slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from greenroom._errors import ErrorInfo, GreenroomError, MailboxClosed
from greenroom.mailbox import Message, make_envelope
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors._actor import Actor
    from greenroom.actors._cell import Cell
    from greenroom.mailbox import Envelope, Mailbox

__all__ = [
    "Terminated",
    "TerminationReason",
    "WatchHandle",
    "Watchable",
    "Watches",
    "cell_closed",
    "note_end",
    "unwatch",
    "watch_cell",
    "watch_remote",
]

TerminationReason = Literal["normal", "stopped", "failed", "noproc", "node_lost"]
"""Why a watched actor is gone (see :class:`Terminated`)."""


class Terminated(Message, frozen=True, kw_only=True, tag="greenroom.Terminated"):
    """A watched actor stopped for good: sent once per ``ctx.watch``.

    Plain data, so it crosses durable and Redis mailboxes (compare
    ``actor`` with the name of the ref you watched).

    Attributes:
        actor: the name of the watched actor.
        reason: ``"normal"``: it stopped itself (``ctx.stop()``);
            ``"stopped"``: it was stopped (by its supervisor, ``Runtime.stop``,
            a shutdown, or the actor that spawned it stopping); ``"failed"``:
            it failed and was not restarted (a temporary or transient child
            that failed, the failure that made its supervisor give up, a
            restart whose ``on_restart`` raised, or a failed actor stopped
            while its restart was pending); ``"noproc"``: it was not running
            when watched (stopped, or never spawned); ``"node_lost"``: the
            node hosting it stopped heartbeating for its ``takeover`` time
            (remote watch only).
        error: the failure, for ``"failed"`` (type and message; the
            traceback is in the log and the dead letter).
        node: the node that hosted it (remote watch only).
    """

    actor: str
    reason: TerminationReason
    error: ErrorInfo | None = None
    node: str | None = None


class WatchHandle(Protocol):
    """A remote watch in progress, as the node layer keeps it."""

    def cancel(self) -> None:
        """Stop watching: the notification is not sent. Idempotent; never raises."""
        ...


class Watchable(Protocol):
    """A ref that is not a local :class:`~greenroom.ActorRef` but can be watched.

    ``RemoteRef`` implements it; ``ActorContext.watch`` calls
    ``_gr_watch(notify)``, and the implementation calls ``notify`` at most
    once, from the event loop's thread, with the :class:`Terminated` to send.
    """

    @property
    def name(self) -> str:
        """The watched actor's name."""
        ...

    def _gr_watch(self, notify: Callable[[Terminated], None]) -> WatchHandle: ...


WatchKey = tuple[bool, str]  # (remote?, name): a remote and a local actor may share a name


class _Remote:
    """A remote watch as its watcher keeps it (the handle comes once ``_gr_watch`` returned)."""

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: WatchHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


class Watches:
    """One cell's watch state: who watches it, what it watches, and why it may stop."""

    __slots__ = ("ended_by", "ending", "watchers", "watching")

    def __init__(self) -> None:
        self.watchers: dict[Cell, None] = {}  # an ordered set: notified in watch order
        self.watching: dict[WatchKey, Cell | _Remote] = {}
        # The instance that failed or asked to stop, and how: it is the reason
        # at close only if that instance is still the current one (no restart since).
        self.ended_by: Actor | None = None
        self.ending: tuple[TerminationReason, ErrorInfo | None] = ("stopped", None)


def _watches(cell: Cell) -> Watches:
    found = cell.watches
    if found is None:
        found = cell.watches = Watches()
    return found


def note_end(cell: Cell, error: Exception | None) -> None:
    """``cell``'s instance failed (``error``) or asked to stop (``None``): the reason
    its watchers get if it closes before another instance runs."""
    watches = _watches(cell)
    watches.ended_by = cell.actor
    if error is None:
        watches.ending = ("normal", None)
    else:
        watches.ending = ("failed", ErrorInfo.from_exception(error, with_traceback=False))


def watch_cell(watcher: Cell, target: Cell | None, name: str) -> None:
    """``watcher`` watches ``target`` (``None``: no actor called ``name`` runs)."""
    key: WatchKey = (False, name)
    mine = _watches(watcher)
    if key in mine.watching:
        if mine.watching[key] is target:
            return  # watching twice is one watch
        _forget(watcher, key, mine.watching.pop(key))  # an older incarnation
    if target is None or target.mailbox.closed:
        _send(watcher, Terminated(actor=name, reason="noproc"))
        return
    mine.watching[key] = target
    _watches(target).watchers[watcher] = None


def watch_remote(watcher: Cell, ref: Watchable) -> None:
    """``watcher`` watches the remote ``ref`` through its node layer."""
    key: WatchKey = (True, ref.name)
    mine = _watches(watcher)
    if key in mine.watching:
        return  # watching twice is one watch
    entry = mine.watching[key] = _Remote()

    def notify(body: Terminated) -> None:
        # Only while this watch stands (not unwatched, the watcher not stopped).
        if mine.watching.get(key) is entry and watcher.watches is mine:
            del mine.watching[key]
            _send(watcher, body)

    try:
        entry.handle = ref._gr_watch(notify)
    except BaseException:
        if mine.watching.get(key) is entry:
            del mine.watching[key]  # refused: nothing is kept
        raise
    if mine.watching.get(key) is not entry:
        entry.cancel()  # notified (or unwatched) already, from inside _gr_watch


def unwatch(watcher: Cell, name: str, *, remote: bool) -> None:
    """Forget ``watcher``'s watch of ``name``, if any."""
    mine = watcher.watches
    if mine is None:
        return
    key: WatchKey = (remote, name)
    watched = mine.watching.pop(key, None)
    if watched is not None:
        _forget(watcher, key, watched)


def _forget(watcher: Cell, key: WatchKey, watched: Cell | _Remote) -> None:
    if isinstance(watched, _Remote):
        watched.cancel()
        return
    theirs = watched.watches
    if theirs is not None:
        theirs.watchers.pop(watcher, None)


def cell_closed(cell: Cell) -> None:
    """``cell`` stopped for good: tell its watchers and end its own watches (never waits)."""
    watches = cell.watches
    if watches is None:
        return
    cell.watches = None
    if watches.watchers:
        reason, error = (
            watches.ending if watches.ended_by is cell.actor is not None else ("stopped", None)
        )
        body = Terminated(actor=cell.name, reason=reason, error=error)
        key: WatchKey = (False, cell.name)
        for watcher in watches.watchers:
            theirs = watcher.watches
            if theirs is not None and theirs.watching.get(key) is cell:
                del theirs.watching[key]
                _send(watcher, body)
    for key, watched in watches.watching.items():
        _forget(cell, key, watched)


def _send(watcher: Cell, body: Terminated) -> None:
    """Put ``body`` in ``watcher``'s mailbox, now if there is room, else once there is."""
    mailbox = watcher.mailbox
    if mailbox.closed:
        return  # the watcher is gone: nobody to tell
    envelope = make_envelope(watcher.name, body)
    try:
        # A durable mailbox's offer does not wait for the commit; its put does.
        if not watcher.durable and mailbox.offer(envelope):
            return
    except GreenroomError:
        return  # closed meanwhile
    watcher.system.start_task(_put(mailbox, envelope), f"{watcher.name}:terminated")


async def _put(mailbox: Mailbox, envelope: Envelope) -> None:
    try:
        await mailbox.put(envelope)
    except MailboxClosed:
        pass  # the watcher stopped while waiting for room: nobody to tell
    except GreenroomError as error:  # a durable or Redis mailbox could not take it
        logger.bind(actor=envelope.recipient, event="terminated_lost").warning(
            "{actor}: a Terminated could not be delivered: {error!r}",
            actor=envelope.recipient,
            error=error,
        )
