"""Shared test actors and helpers for the supervision tests.

Every test owns a :class:`Log`, a plain list of ``(event, actor name)``
tuples, and passes it to its actors through ``ChildSpec(args=(log,))``. The
actors record their lifecycle in it (``start``, ``restart``, ``stop``), so a
test can assert exactly what was restarted, in which order and how often.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

import greenroom as gr
from greenroom.actors import Ignore, Restart, Spec

NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)
"""No delay: restarts and retries happen in the supervisor's current step."""

ONE_ATTEMPT = gr.RetryPolicy(max_attempts=1, backoff=NO_BACKOFF)
"""A failed message is dead-lettered at once, so one failure is one restart."""

Event = tuple[str, str]


class Log(list[Event]):
    """What happened, in order: ``("start", "sup/a")``, ``("restart", "sup/a")``..."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[str, str, float]] = []

    def record(self, event: str, name: str) -> None:
        self.append((event, name))
        self.times.append((event, name, time.monotonic()))

    def at(self, event: str, name: str, nth: int = 0) -> float:
        """The monotonic time of the ``nth`` ``event`` of ``name``."""
        found = [t for e, n, t in self.times if (e, n) == (event, name)]
        return found[nth]

    def of(self, *events: str) -> list[Event]:
        """Only the given kinds of event, in order."""
        return [e for e in self if e[0] in events]


class Crash(gr.Message):
    """Makes a :class:`Recorder` raise :class:`Boom`."""


class Exit(gr.Message):
    """Makes a :class:`Recorder` stop itself normally (``self.ctx.stop()``)."""


class Ping(gr.Message):
    """Answered with the actor's name."""


class Boom(Exception):
    """The failure the test actors raise."""


class Recorder(gr.Actor):
    """Records its lifecycle; crashes on :class:`Crash`, exits on :class:`Exit`."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def on_start(self) -> Ignore | None:
        self.log.record("start", self.ctx.name)
        return None

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        self.log.record("restart", self.ctx.name)

    async def on_stop(self) -> None:
        self.log.record("stop", self.ctx.name)

    @gr.handler
    async def crash(self, msg: Crash) -> None:
        self.log.record("crash", self.ctx.name)
        raise Boom(f"{self.ctx.name} crashed")

    @gr.handler
    async def exit(self, msg: Exit) -> None:
        self.log.record("exit", self.ctx.name)
        self.ctx.stop()

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        return self.ctx.name


class FailsToStart(Recorder):
    """A child whose ``on_start`` raises."""

    async def on_start(self) -> Ignore | None:
        self.log.record("start_failed", self.ctx.name)
        raise Boom(f"{self.ctx.name} cannot start")


class Ignored(Recorder):
    """A child whose ``on_start`` returns ``IGNORE``."""

    async def on_start(self) -> Ignore | None:
        self.log.record("ignore", self.ctx.name)
        return gr.IGNORE


def child(
    cid: str,
    log: Log,
    *,
    actor: type[gr.Actor] = Recorder,
    restart: Restart = "permanent",
    **options: object,
) -> gr.ChildSpec:
    """A child spec for a test actor that gets ``log``; one failure is one restart."""
    options.setdefault("retry", ONE_ATTEMPT)
    return gr.ChildSpec(actor=actor, id=cid, args=(log,), restart=restart, **options)  # type: ignore[arg-type]


def supervisor(sid: str, *children: Spec, **options: object) -> gr.SupervisorSpec:
    """A supervisor spec with no restart backoff unless one is given."""
    options.setdefault("backoff", NO_BACKOFF)
    return gr.SupervisorSpec(id=sid, children=children, **options)  # type: ignore[arg-type]


async def wait_until(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float = 3.0
) -> None:
    """Yield to the event loop until ``predicate()`` holds; fail after ``timeout`` s.

    A checkpoint lets every ready task and due timer run; it is not a sleep.
    """
    with anyio.fail_after(timeout):
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.lowlevel.checkpoint()


async def statuses(ref: gr.SupervisorRef) -> dict[str, str]:
    """``{child id: status}`` in start order."""
    return {c.id: c.status for c in await ref.which_children()}


async def spawn_auto(
    rt: gr.Runtime, log: Log, mode: str, *children: gr.ChildSpec
) -> gr.SupervisorRef:
    """A transient supervisor ``sup`` with ``auto_shutdown=mode``, started; the log cleared."""
    sup = await rt.spawn(supervisor("sup", *children, auto_shutdown=mode, restart="transient"))
    log.clear()
    return sup


async def root_statuses(rt: gr.Runtime) -> dict[str, str]:
    """The statuses of the root's children."""
    root = rt.ref("root")
    assert isinstance(root, gr.SupervisorRef)
    return await statuses(root)
