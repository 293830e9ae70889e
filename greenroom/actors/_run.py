"""Entry points for scripts (``run``) and long-lived processes (``serve``)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

from greenroom.actors._config import RuntimeConfig
from greenroom.actors._runtime import Runtime
from greenroom.actors._spec import ChildSpec, PoolSpec, SupervisorSpec
from greenroom.mailbox import DeadLetterSink, MailboxFactory
from greenroom.trace._logging import logger

__all__ = ["run", "serve"]

T = TypeVar("T")


def run(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``main(*args)`` on a new asyncio event loop and return its result.

    For scripts: ``greenroom.run(main)`` at the bottom of the file.
    """
    return anyio.run(main, *args, backend="asyncio")


async def serve(
    setup: Callable[[Runtime], Awaitable[None]] | ChildSpec | PoolSpec | SupervisorSpec,
    *,
    config: RuntimeConfig | None = None,
    drain_timeout: float = 10.0,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    ready: Callable[[Runtime], None] | None = None,
    mailboxes: Mapping[str, MailboxFactory] | None = None,
    dead_letters: DeadLetterSink | None = None,
) -> None:
    """Run a long-lived actor system until SIGINT or SIGTERM, then shut it down gracefully.

    ``setup`` is a spec to start under the root, or a coroutine function
    that receives the runtime and starts what it needs. ``ready`` is called
    once setup is done. On a signal: stop intake (messages from outside
    actors are refused), drain the mailboxes for up to ``drain_timeout``
    seconds, then stop the tree (children before parents). Returns early,
    raising its error, if the root supervisor gives up.

    ``mailboxes`` and ``dead_letters`` are passed to the :class:`Runtime`.
    With durable mailboxes (``SqliteMailboxes``), a process restarted on the
    same database resumes where it stopped: ``setup`` rebuilds the tree from
    its specs, and every actor's unacked messages are delivered again.
    """
    async with Runtime(config, mailboxes=mailboxes, dead_letters=dead_letters) as rt:
        # Listen before setup, so a signal that comes early is not lost.
        with anyio.open_signal_receiver(*signals) as stream:
            if isinstance(setup, ChildSpec | PoolSpec | SupervisorSpec):
                await rt.spawn(setup)
            else:
                await setup(rt)
            if ready is not None:
                ready(rt)
            received: int | None = None
            async with anyio.create_task_group() as tg:

                async def wait_failure() -> None:
                    await rt.wait_stopped()
                    tg.cancel_scope.cancel()  # cancels the wait for a signal below

                tg.start_soon(wait_failure)
                async for signum in stream:
                    received = signum
                    break
                tg.cancel_scope.cancel()
        if received is not None:
            logger.bind(event="shutdown").info(
                "signal {signal}: draining for up to {timeout} s",
                signal=received,
                timeout=drain_timeout,
            )
            drained = await rt.drain(drain_timeout)
            if not drained:
                logger.bind(event="shutdown").warning("drain deadline passed; stopping anyway")
