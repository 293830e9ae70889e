"""Three node processes share a keyed pool; one is SIGKILLed midway; nothing is lost.

The nodes (``tests/cluster/node_app.py``) run on the session's redis-server
under their own system prefix. Synchronisation is by their stdout lines
(``ready``, ``hosts P``, ``stopped P``) and by blocking reads of the stream
their workers append to, never by sleeping.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import anyio
import pytest
import redis

from greenroom import Runtime
from greenroom.cluster import Node
from greenroom.mailbox import RedisMailboxes
from tests._redis_server import redis_url
from tests.cluster.node_app import PARTITIONS, Step

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[str, str, float]  # node, line of output, when it was read
MESSAGES = 10_000
KEYS = 100


class NodeProcess:
    """One node process; its output lines go to a shared queue as (name, line, time read)."""

    def __init__(self, url: str, system: str, name: str, events: queue.Queue[Event]):
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.node_app", url, system, name, "0.2", "1.0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._read, args=(events,), daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, events: queue.Queue[Event]) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        pending = b""
        while chunk := os.read(stdout.fileno(), 65536):  # raw reads: no line kept in a buffer
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                events.put((self.name, line.decode(), time.monotonic()))
        events.put((self.name, "exited", time.monotonic()))

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            self.stderr.append(chunk)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        for thread in self._threads:  # they end at the pipes' EOF
            thread.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return code


class Cluster:
    """What the driver knows from the nodes' output."""

    def __init__(self) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.hosting: dict[str, set[int]] = defaultdict(set)
        self.ready: set[str] = set()
        self.exited: set[str] = set()
        self.took: list[tuple[str, int, float]] = []
        self.logs: list[str] = []  # the nodes' warnings and errors

    def wait(self, condition: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"timed out waiting for {what}; hosting {dict(self.hosting)}; "
                    f"the nodes logged: {self.logs[-20:]}"
                )
            try:
                name, line, at = self.events.get(timeout=left)
            except queue.Empty:
                continue
            word, _, arg = line.partition(" ")
            if word == "ready":
                self.ready.add(name)
            elif word == "hosts":
                self.hosting[name].add(int(arg))
                self.took.append((name, int(arg), at))
            elif word == "stopped":
                self.hosting[name].discard(int(arg))
            elif word == "exited":
                self.exited.add(name)
            elif word == "log":
                self.logs.append(f"{name}: {arg}")


def test_three_nodes_share_a_keyed_pool_and_a_sigkill_loses_nothing() -> None:
    url = redis_url()
    system = f"kill{uuid.uuid4().hex[:8]}"
    cluster = Cluster()
    names = ["n1", "n2", "n3"]
    nodes = {name: NodeProcess(url, system, name, cluster.events) for name in names}
    victim = "n2"
    survivors = [n for n in names if n != victim]
    try:
        cluster.wait(lambda: cluster.ready == set(names), "three nodes ready")
        cluster.wait(
            lambda: all(len(cluster.hosting[n]) == PARTITIONS // 3 for n in names),
            "the partitions shared 4/4/4",
        )
        victim_partitions = set(cluster.hosting[victim])
        killed_at: list[float] = []

        async def produce() -> None:
            async with (
                RedisMailboxes(url, prefix=f"{system}:") as boxes,
                Runtime(mailboxes={"redis": boxes}) as rt,
                Node(rt, boxes, name="producer", heartbeat=5, takeover=10) as node,
            ):
                keyed = await node.pool_ref("keyed", key="key")
                per_key = MESSAGES // KEYS

                async def send_key(key: str) -> None:  # one sender per key keeps its order
                    for seq in range(per_key):
                        await keyed.tell(Step(key=key, seq=seq))
                        if key == "k0" and seq == per_key // 2:
                            os.kill(nodes[victim].process.pid, signal.SIGKILL)
                            killed_at.append(time.monotonic())

                async with anyio.create_task_group() as tg:
                    for k in range(KEYS):
                        tg.start_soon(send_key, f"k{k}")

        anyio.run(produce)
        assert nodes[victim].process.wait(timeout=10) == -signal.SIGKILL

        # Everything is handled, the dead node's messages included.
        client = redis.Redis.from_url(url)
        handled: list[tuple[str, str, int, int]] = []
        firsts: set[tuple[str, int]] = set()
        last: bytes | str = "0-0"
        deadline = time.monotonic() + 60
        while len(firsts) < MESSAGES:
            assert time.monotonic() < deadline, f"only {len(firsts)} of {MESSAGES} handled"
            reply = client.xread({f"{system}:handled": last}, count=5000, block=1000)
            for _stream, entries in reply or ():
                for sid, f in entries:
                    last = sid
                    row = (f[b"n"].decode(), f[b"k"].decode(), int(f[b"s"]), int(f[b"a"]))
                    handled.append(row)
                    firsts.add((row[1], row[2]))
        cluster.wait(
            lambda: set().union(*(cluster.hosting[n] for n in survivors)) == set(range(PARTITIONS)),
            "the survivors hosting every partition",
        )
        client.close()
    finally:
        codes = {name: node.stop() for name, node in nodes.items()}

    # The killed node's partitions moved to the survivors.
    assert victim_partitions
    moved = {p: at for n, p, at in cluster.took if n in survivors and p in victim_partitions}
    assert set(moved) == victim_partitions
    # Within takeover (1 s) + a heartbeat (0.2 s) + a beat to see it, plus slack for a busy box.
    takeover = max(moved.values()) - killed_at[0]
    assert takeover < 4.0, f"partitions moved {takeover:.2f} s after the kill"
    # Per key: first handlings in order; a repeat only of what the victim had not acked.
    by_key: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for node_name, key, seq, _attempt in handled:
        by_key[key].append((node_name, seq))
    repeats = 0
    for key, rows in by_key.items():
        seen: dict[int, str] = {}
        order = []
        for node_name, seq in rows:
            if seq in seen:
                assert seen[seq] == victim, f"{key} seq {seq} handled twice, not after the kill"
                repeats += 1
                continue
            seen[seq] = node_name
            order.append(seq)
        assert order == sorted(order), f"{key} out of order: {order}"
        assert sorted(seen) == list(range(MESSAGES // KEYS))
    assert repeats < MESSAGES // 10
    print(
        f"handled {len(handled)} for {MESSAGES} messages ({repeats} redelivered); "
        f"partitions moved {takeover:.2f} s after the kill"
    )
    assert all(codes[n] == 0 for n in survivors), (codes, [nodes[n].stderr for n in survivors])
