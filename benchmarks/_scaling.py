"""The scaling part of benchmarks/distributed.py: a keyed pool on 1, 2 and 3 node processes.

For each node count: a fresh system prefix; the node processes start and
share the pool's 12 partitions (untimed); then the clock runs while the
producer (this process, through a producer-only
:class:`~greenroom.cluster.Node`, 120 keys, one sender task per key) sends
``messages`` keyed messages (from its first send; its own start-up is not
timed), and until every partition stream is empty (entries are deleted on
ack; polled every 5 ms). The producer, the nodes
and redis-server share the machine's cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import redis

from greenroom import Runtime
from greenroom.cluster import Node
from greenroom.mailbox import RedisMailboxes

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _scaling_node import PARTITIONS, Work  # noqa: E402

__all__ = ["scaling_run"]


async def _send_and_drain(url: str, system: str, messages: int) -> float:
    """Send ``messages`` keyed messages, wait until every partition stream is empty; seconds."""
    async with (
        RedisMailboxes(url, prefix=f"{system}:") as boxes,
        Runtime(mailboxes={"redis": boxes}) as rt,
        Node(rt, boxes, name="producer", heartbeat=5, takeover=10) as node,
    ):
        pool = await node.pool_ref("scale", key="key")
        keys = 120
        streams = _streams(system)

        async def send(k: int) -> None:
            for seq in range(k, messages, keys):
                await pool.tell(Work(key=f"k{k}", seq=seq))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(keys):
                tg.start_soon(send, k)
        while True:
            async with boxes.client.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xlen(stream)
                if sum(await pipe.execute()) == 0:
                    return time.perf_counter() - started
            await anyio.sleep(0.005)


def _streams(system: str) -> list[str]:
    return [f"{system}:{{scale/{p}}}:s" for p in range(PARTITIONS)]


def scaling_run(url: str, nodes: int, messages: int, work_us: float) -> float:
    """Seconds for ``nodes`` node processes to be sent and handle ``messages`` messages."""
    system = f"scale{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    script = str(HERE / "_scaling_node.py")
    procs = [
        subprocess.Popen(
            [sys.executable, script, url, system, f"n{i}", str(work_us), str(nodes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for i in range(nodes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("a scaling node did not start")
        return anyio.run(_send_and_drain, url, system, messages)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        keys = list(client.scan_iter(match=f"{system}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
