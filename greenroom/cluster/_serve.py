"""serve_node: a long-lived process that joins a system and hosts part of it."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Sequence

import anyio

from greenroom.actors import Runtime, RuntimeConfig
from greenroom.cluster._node import Node
from greenroom.mailbox import RedisMailboxes
from greenroom.trace import Tracer

__all__ = ["serve_node"]


async def serve_node(
    setup: Callable[[Node], Awaitable[None]],
    *,
    url: str,
    system: str,
    name: str | None = None,
    heartbeat: float = 1.0,
    takeover: float = 5.0,
    lease: float = 30.0,
    poll: float = 0.01,
    config: RuntimeConfig | None = None,
    tracer: Tracer | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    ready: Callable[[Node], None] | None = None,
    stop: anyio.Event | None = None,
) -> None:
    """Run a node of ``system`` on the Redis at ``url`` until SIGINT or SIGTERM.

    ``stop``, when given and set, stops the node as a signal would (for a
    node embedded in a larger program, or a test).

    ``setup(node)`` hosts what this node runs (``node.host_pool(...)``,
    ``node.runtime.spawn(...)``); ``ready(node)`` is called after it. The
    runtime's Redis mailboxes are registered as ``"redis"`` and use the key
    prefix ``"<system>:"``; their consumer is the node's name, so a node
    restarted under the same ``name`` gets its unacked entries back at once.
    The runtime's dead letters (of every actor of the node, on any mailbox)
    go to the system's dead-letter stream ``<system>:dead``, where ``greenroom
    dlq --redis URL --prefix <system>:`` lists and redrives them.
    ``lease`` is how long an entry read by a dead consumer outside any
    partition waits before another process claims it; ``poll`` how often
    the mailboxes look for entries other processes put (lower: less
    latency across processes, more idle reads).

    On a signal the node gives its partitions back (each handler finishes,
    acks are written, leases released so others take over at once), leaves
    the system, then the runtime stops. Returns early, raising its error,
    if the root supervisor gives up.

    Raises:
        MailboxUnavailable: Redis cannot be reached at start.
    """
    async with (
        RedisMailboxes(url, prefix=f"{system}:", consumer=name, lease=lease, poll=poll) as boxes,
        Runtime(
            config, mailboxes={"redis": boxes}, dead_letters=boxes.dead_letters, tracer=tracer
        ) as rt,
    ):
        with anyio.open_signal_receiver(*signals) as stream:
            async with Node(rt, boxes, name=name, heartbeat=heartbeat, takeover=takeover) as node:
                await setup(node)
                if ready is not None:
                    ready(node)
                async with anyio.create_task_group() as tg:

                    async def wait_signal() -> None:
                        async for _ in stream:
                            break
                        tg.cancel_scope.cancel()

                    async def wait_runtime() -> None:
                        await rt.wait_stopped()
                        tg.cancel_scope.cancel()

                    tg.start_soon(wait_signal)
                    tg.start_soon(wait_runtime)
                    if stop is not None:

                        async def wait_stop() -> None:
                            await stop.wait()
                            tg.cancel_scope.cancel()

                        tg.start_soon(wait_stop)
