"""A node process for benchmarks/distributed.py's scaling part.

``python benchmarks/_scaling_node.py URL SYSTEM NAME WORK_US NODES`` serves
the keyed pool ``scale`` (12 partitions) whose workers spend ``WORK_US``
microseconds of CPU per message (standing in for real work: parsing,
building a context). Prints ``ready`` once it hosts its share of ``NODES``.
"""

from __future__ import annotations

import sys
import time

import anyio

from greenroom import Actor, ChildSpec, Message, handler
from greenroom.cluster import Node, serve_node

PARTITIONS = 12


class Work(Message, frozen=True):
    key: str
    seq: int


class Worker(Actor):
    def __init__(self, work_us: float) -> None:
        self.work = work_us / 1e6

    @handler
    async def work(self, msg: Work) -> None:
        end = time.perf_counter() + self.work
        while time.perf_counter() < end:
            pass


def main() -> None:
    url, system, name = sys.argv[1], sys.argv[2], sys.argv[3]
    work_us, nodes = float(sys.argv[4]), int(sys.argv[5])

    async def setup(node: Node) -> None:
        worker = ChildSpec(actor=Worker, args=(work_us,))
        await node.host_pool("scale", worker, partitions=PARTITIONS, capacity=1_000_000)
        # The node takes its share at its heartbeats; nothing to wait on but time.
        while len(node.hosted("scale")) != PARTITIONS // nodes:  # noqa: ASYNC110
            await anyio.sleep(0.05)

    anyio.run(
        lambda: serve_node(
            setup,
            url=url,
            system=system,
            name=name,
            heartbeat=0.2,
            takeover=1.0,
            ready=lambda node: print("ready", flush=True),
        )
    )


if __name__ == "__main__":
    main()
