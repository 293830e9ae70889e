"""A node process for the multi-process tests: ``python -m tests.cluster.node_app URL SYSTEM NAME``.

It serves a keyed pool ``keyed`` (12 partitions) whose workers append every
message they handle to the stream ``<system>:handled`` (node, key, seq,
attempt). It prints ``ready`` once joined, and ``hosts P`` / ``stopped P``
whenever it takes or gives back partition ``P``, so the driver can wait on
its output.
"""

from __future__ import annotations

import sys

import anyio
import redis.asyncio
from loguru import logger

from greenroom import Actor, ChildSpec, Message, handler
from greenroom.cluster import Node, serve_node

PARTITIONS = 12


class Step(Message, frozen=True):
    key: str
    seq: int


class Handler(Actor):
    def __init__(self, node: str, url: str, stream: str) -> None:
        self.node = node
        self.url = url
        self.stream = stream

    async def on_start(self) -> None:
        self.redis = redis.asyncio.Redis.from_url(self.url)

    async def on_stop(self) -> None:
        await self.redis.aclose()

    @handler
    async def step(self, msg: Step) -> None:
        attempt = self.ctx.envelope.attempt if self.ctx.envelope is not None else 1
        await self.redis.xadd(
            self.stream, {"n": self.node, "k": msg.key, "s": msg.seq, "a": attempt}
        )


def main() -> None:
    url, system, name = sys.argv[1:4]
    heartbeat = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    takeover = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    logger.remove()
    logger.enable("greenroom")

    def sink(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        actor = record["extra"].get("actor")
        text = record["message"]
        if actor is not None and " hosts " in text:
            print("hosts", actor.split("/")[1], flush=True)
        elif actor is not None and "stopped hosting" in text:
            print("stopped", actor.split("/")[1], flush=True)
        elif record["level"].no >= 30:  # warnings and errors, for the driver's failure report
            print("log", record["level"].name, text.replace("\n", " | "), flush=True)

    logger.add(sink, level="INFO")

    async def setup(node: Node) -> None:
        worker = ChildSpec(actor=Handler, args=(name, url, f"{system}:handled"))
        await node.host_pool("keyed", worker, partitions=PARTITIONS, capacity=100_000)

    def ready(node: Node) -> None:
        print("ready", flush=True)

    anyio.run(
        lambda: serve_node(
            setup,
            url=url,
            system=system,
            name=name,
            heartbeat=heartbeat,
            takeover=takeover,
            ready=ready,
        )
    )


if __name__ == "__main__":
    main()
