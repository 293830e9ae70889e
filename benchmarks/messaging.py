"""Messaging throughput of greenroom against the asyncio floor, raw anyio, pykka and autogen-core.

Run::

    uv run benchmarks/messaging.py [--quick] [--json] [--repeat N]
    uv run benchmarks/messaging.py --million [--json]

What is measured, in one process and one run, for every contender:

``tell``
    One-way messages to one actor: the clock starts before the first send and
    stops when the actor has handled the last message (its handler counts the
    messages and sets an event at the last one). Reported as messages/s.
``ask``
    Sequential request/reply round trips to one actor: send, wait for the
    reply, send the next. Reported as round trips/s.
``fanout``
    One message to each of 1,000 actors, for several rounds; the clock stops
    when every actor has handled every message. Reported as messages/s.
    Every consumer is running before the clock starts: the floor's tasks are
    started first, and each greenroom actor handles one untimed ask (an idle
    actor holds no task until its first message).

Sizes: tell 50,000 messages, ask 10,000 round trips, fan-out 1,000 actors x 10
rounds, 5 repeats (--quick: 10,000 / 2,000 / 1,000 x 3, 3 repeats). Each
pattern starts with an untimed warm-up of every contender at a tenth of the size.

The contenders do the same work per message (one counter increment in the
handler, the reply is the message's number) and use the same completion
signal; only the transport differs:

``floor``
    The primary floor, what CPython's event loop does with nothing on top:
    one ``asyncio.Queue`` and one consumer task per actor for tell and
    fan-out; for ask the same queue, and each request carries its own
    ``asyncio.Future``, which the consumer resolves and the asker awaits (one
    future per request, no reply queue). greenroom's ``<pattern>_vs_floor``
    ratios are the issue's targets (>= 1.0 each).
``asyncio_queue``
    For reference: the same code as the floor for tell and fan-out (so the
    gap between the two rows is this run's noise), and asks answered through
    a reply queue, the way the floor used to be defined.
``anyio``
    Raw anyio memory object streams the plain way: ``await send`` and
    ``async for`` receive, one task per actor, asks ping-pong through a reply
    stream: how one hand-rolls actors on anyio, a reference (not a floor).
``pykka``
    ``pykka.ThreadingActor`` (one thread per actor), ``ref.tell`` and
    ``ref.ask``, driven from the main thread with no event loop; completion is
    a ``threading.Event`` and the counter takes a lock (handlers run on many
    threads). Its fan-out really starts 1,000 threads, in --quick mode too.
``autogen``
    autogen-core's ``SingleThreadedAgentRuntime`` with a ``RoutedAgent``:
    ``publish_message`` to a ``TypeSubscription`` topic for one-way messages
    (``send_message`` always waits for the reply, so it is not one-way) and
    ``send_message`` for request/reply. A topic ``("bench", K)`` reaches agent
    ``("sink", K)``, so fan-out publishes once to each of 1,000 agents; agents
    are instantiated before the clock starts (autogen creates them lazily).
``greenroom``
    ``ActorRef.tell`` / ``ActorRef.ask`` to ``greenroom.Actor`` handlers, through
    greenroom's public API only. While the package does not export that API,
    it is skipped with a notice and its figures are ``null``.
``greenroom_traced``
    The same with tracing on: every handled message is a span in the tracer of
    a real ``SqliteTraceStore`` on a file, whose background task writes it as
    in production, every 0.5 s. At these sizes a timed region usually ends
    before that first flush (the store opens just before it), so
    ``traced_vs_untraced[_ask|_fanout]``, its throughput over greenroom's,
    counts recording and buffering, and a flush only when one falls inside.
    Writing the spans is timed apart, after the clock stops and before the
    runtime closes; the reference ratios ``traced_durable_vs_untraced[_ask|
    _fanout]`` count it in (the clock stopped once every span is in the file).

The bounded contenders (floor, asyncio.Queue, anyio, greenroom) all get a
mailbox of ``MAILBOX_CAPACITY`` messages and wait when it is full; pykka and
autogen-core have unbounded queues. Setup (spawning, thread start, agent
instantiation) and teardown are outside the timed region; garbage is
collected before each timed region; contenders are interleaved within each
repeat so that a noisy moment does not hit one of them only. Each figure is
the median of the repeats.

How to read the ratios: ``<pattern>_vs_<other>`` is greenroom's throughput
divided by the other's, so above 1 means greenroom is faster. The issue's
targets are printed next to them; a missed target is printed (``BELOW``, or
``ABOVE`` for a ceiling) but does not change the exit status.

Ask latency: 1, 10 and 100 concurrent askers, each doing sequential asks to
the same single actor, 20,000 asks per point (--quick: 2,000), split evenly
between the askers; every ask's latency is taken with
``time.perf_counter_ns`` around the one ``await``. greenroom and the floor
(the Queue + Future ask above, its consumer doing no counting, as greenroom's
handler here) take turns within each repeat; p50, p99 and p99.9 are the
nearest-rank percentiles of one run's samples, and each printed figure is
their median over the repeats. ``ask_p99_vs_floor_<askers>`` is greenroom's
p99 over the floor's (below 1 = greenroom faster); the target is <= 1.5.

Idle footprint: greenroom spawns 100,000 idle actors (10,000 with --quick).
``bytes_per_idle_actor`` (target <= 1.5 KB) is traced memory under
tracemalloc after the spawns minus before, divided by the count, the
``ActorRef`` the caller keeps included. ``rss_bytes_per_idle_actor`` (target
<= 3 KB) and ``spawn_per_second`` (target >= 200,000) come from a fresh
interpreter without tracemalloc, so that memory the benchmarks above freed
is not reused and counted as free: resident memory (``/proc/self/statm``)
after the spawns minus before, with garbage collected before each reading,
and the spawns' wall time. It spawns two batches of that size and measures
the second: the first fills what the interpreter freed while importing
(about 0.5 KB per actor at 10,000 actors, had it been counted).

``--million`` runs only this, at scale: one process spawns 1,000,000 idle
actors and prints the time it took, the resident memory per actor, and that
a sample of 1,000 of them (chosen at random, seeded) each answer one ask.
It is not part of the default or the --quick run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import _harness as h
import anyio
import pykka
from autogen_core import (
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    TopicId,
    TypeSubscription,
    message_handler,
)

MAILBOX_CAPACITY = 1024
RUN_TIMEOUT = 120.0  # seconds; a contender that hangs fails the benchmark instead
MILLION_TIMEOUT = 1800.0  # seconds, for --million (spawning, asking and closing)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each measurement does; the same for every contender."""

    tell: int
    ask: int
    fanout_actors: int
    fanout_rounds: int
    idle_actors: int
    latency_asks: int  # per concurrency point and run, split between the askers


FULL = Sizes(
    tell=50_000,
    ask=10_000,
    fanout_actors=1_000,
    fanout_rounds=10,
    idle_actors=100_000,
    latency_asks=20_000,
)
QUICK = Sizes(
    tell=10_000,
    ask=2_000,
    fanout_actors=1_000,
    fanout_rounds=3,
    idle_actors=10_000,
    latency_asks=2_000,
)
MILLION = 1_000_000  # idle actors of --million
MILLION_SAMPLE = 1_000  # of them asked once afterwards

PATTERNS = ("tell", "ask", "fanout")
ASKERS = (1, 10, 100)  # concurrent askers of the latency measurement
PERCENTILES = {"p50": 0.50, "p99": 0.99, "p99.9": 0.999}
TRACED_TARGET = 0.75  # tracing on, with a sqlite trace store, vs tracing off (every pattern)
TRACED_KEYS = {
    p: "traced_vs_untraced" if p == "tell" else f"traced_vs_untraced_{p}" for p in PATTERNS
}
DURABLE_KEYS = {p: k.replace("traced_vs", "traced_durable_vs") for p, k in TRACED_KEYS.items()}

# greenroom's throughput / the other's, and the target (None: reference only). The floor's
# are issue #15's targets; the others are kept from the issues that set them.
PRIMARY_RATIOS: dict[str, tuple[str, str, float | None]] = {
    "tell_vs_floor": ("tell", "floor", 1.0),
    "ask_vs_floor": ("ask", "floor", 1.0),
    "fanout_vs_floor": ("fanout", "floor", 1.0),
}
RATIOS: dict[str, tuple[str, str, float | None]] = {
    **PRIMARY_RATIOS,
    "tell_vs_anyio": ("tell", "anyio", 3.0),
    "ask_vs_anyio": ("ask", "anyio", 2.5),
    "fanout_vs_anyio": ("fanout", "anyio", 1.0),
    "tell_vs_pykka": ("tell", "pykka", 2.0),
    "ask_vs_pykka": ("ask", "pykka", 5.0),
    "tell_vs_autogen": ("tell", "autogen", 2.0),
    "ask_vs_autogen": ("ask", "autogen", 10.0),
    "fanout_vs_autogen": ("fanout", "autogen", None),
    "tell_vs_asyncio_queue": ("tell", "asyncio_queue", None),
    "ask_vs_asyncio_queue": ("ask", "asyncio_queue", None),
    "fanout_vs_asyncio_queue": ("fanout", "asyncio_queue", None),
}
LATENCY_KEYS = {askers: f"ask_p99_vs_floor_{askers}" for askers in ASKERS}
LATENCY_CEILING = 1.5  # greenroom's p99 / the floor's, at each number of askers
IDLE_BYTES_CEILING = 1536  # tracemalloc bytes per idle actor, its ref included
IDLE_RSS_CEILING = 3 * 1024  # resident bytes per idle actor
SPAWN_TARGET = 200_000  # actors spawned per second


# --------------------------------------------------------------------------- shared pieces


@dataclass(frozen=True, slots=True)
class Ping:
    """The message of the non-greenroom contenders (greenroom's is a ``gr.Message``)."""

    n: int


class Counter:
    """Counts handled messages and sets ``done`` at the ``target``-th: the completion signal."""

    __slots__ = ("count", "done", "target")

    def __init__(self, target: int, done: asyncio.Event) -> None:
        self.count = 0
        self.target = target
        self.done = done

    def hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.done.set()


class ThreadCounter:
    """:class:`Counter` for handlers that run on threads (pykka)."""

    __slots__ = ("_lock", "count", "done", "target")

    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.target:
                self.done.set()


class Contender(Protocol):
    """One way of passing messages; each method returns the seconds of its timed region."""

    name: str

    def tell(self, n: int) -> float: ...

    def ask(self, n: int) -> float: ...

    def fanout(self, actors: int, rounds: int) -> float: ...


T = TypeVar("T")


def run_async(
    what: str, factory: Callable[[], Coroutine[Any, Any, T]], *, timeout: float = RUN_TIMEOUT
) -> T:
    """Run one measurement in a fresh event loop, bounded by ``timeout`` seconds."""

    async def bounded() -> T:
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await factory()
        except TimeoutError as error:
            if deadline.expired():
                raise RuntimeError(f"{what} did not finish within {timeout:g} s") from error
            raise

    return asyncio.run(bounded())


async def _let_tasks_start() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def _check_reply(reply: object, expected: int, who: str) -> None:
    if reply != expected:
        raise AssertionError(f"{who}: reply {reply!r}, expected {expected!r}")


class LatencyContender(Protocol):
    """One way of answering asks, timed per ask."""

    name: str

    def latency(self, askers: int, asks: int) -> list[int]: ...


async def _time_asks(
    askers: int, asks: int, ask: Callable[[int], Awaitable[object]], who: str
) -> list[int]:
    """Run ``askers`` tasks that each await ``ask(i)`` for their share of ``asks``, one
    after the other, and return every ask's latency in nanoseconds.

    The askers start together, on one event, once every one of them is waiting for it.
    """
    per_asker = max(asks // askers, 1)
    go = asyncio.Event()
    samples: list[list[int]] = [[] for _ in range(askers)]

    async def asker(mine: list[int]) -> None:
        clock = time.perf_counter_ns
        await go.wait()
        for i in range(per_asker):
            start = clock()
            reply = await ask(i)
            mine.append(clock() - start)
            if reply != i:
                _check_reply(reply, i, who)

    async with asyncio.TaskGroup() as tg:
        for mine in samples:
            tg.create_task(asker(mine))
        await _let_tasks_start()
        h.settle()
        go.set()
    return [ns for mine in samples for ns in mine]


# --------------------------------------------------------------------------- raw anyio


class AnyioStreams:
    """Raw anyio memory object streams, ``await send`` / ``async for``."""

    name = "anyio"

    def tell(self, n: int) -> float:
        return run_async(f"{self.name} tell", lambda: self._tell(n))

    def ask(self, n: int) -> float:
        return run_async(f"{self.name} ask", lambda: self._ask(n))

    def fanout(self, actors: int, rounds: int) -> float:
        return run_async(f"{self.name} fan-out", lambda: self._fanout(actors, rounds))

    @staticmethod
    async def _sink(receive: anyio.abc.ObjectReceiveStream[Ping], counter: Counter) -> None:
        async with receive:
            async for _msg in receive:
                counter.hit()

    async def _tell(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        send, receive = anyio.create_memory_object_stream[Ping](MAILBOX_CAPACITY)
        async with anyio.create_task_group() as tg, send:
            tg.start_soon(self._sink, receive, counter)
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for i in range(n):
                await send.send(Ping(i))
            await counter.done.wait()
            return time.perf_counter() - start

    async def _ask(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        req_send, req_receive = anyio.create_memory_object_stream[Ping](MAILBOX_CAPACITY)
        rep_send, rep_receive = anyio.create_memory_object_stream[int](MAILBOX_CAPACITY)

        async def actor() -> None:
            async with req_receive, rep_send:
                async for msg in req_receive:
                    counter.hit()
                    await rep_send.send(msg.n)

        reply = -1
        async with anyio.create_task_group() as tg, rep_receive:
            tg.start_soon(actor)
            async with req_send:
                await _let_tasks_start()
                h.settle()
                start = time.perf_counter()
                for i in range(n):
                    await req_send.send(Ping(i))
                    reply = await rep_receive.receive()
                await counter.done.wait()
                elapsed = time.perf_counter() - start
        _check_reply(reply, n - 1, self.name)
        return elapsed

    async def _fanout(self, actors: int, rounds: int) -> float:
        counter = Counter(actors * rounds, asyncio.Event())
        async with anyio.create_task_group() as tg:
            sends: list[anyio.abc.ObjectSendStream[Ping]] = []
            for _ in range(actors):
                send, receive = anyio.create_memory_object_stream[Ping](MAILBOX_CAPACITY)
                sends.append(send)
                tg.start_soon(self._sink, receive, counter)
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for r in range(rounds):
                for send in sends:
                    await send.send(Ping(r))
            await counter.done.wait()
            elapsed = time.perf_counter() - start
            for send in sends:
                await send.aclose()
        return elapsed


# --------------------------------------------------------------------------- asyncio.Queue


class AsyncioQueue:
    """Plain ``asyncio.Queue``, asks through a reply queue: a reference beside the floor."""

    name = "asyncio_queue"

    def tell(self, n: int) -> float:
        return run_async(f"{self.name} tell", lambda: self._tell(n))

    def ask(self, n: int) -> float:
        return run_async(f"{self.name} ask", lambda: self._ask(n))

    def fanout(self, actors: int, rounds: int) -> float:
        return run_async(f"{self.name} fan-out", lambda: self._fanout(actors, rounds))

    @staticmethod
    async def _sink(queue: asyncio.Queue[Ping], counter: Counter) -> None:
        while True:
            await queue.get()
            counter.hit()

    @staticmethod
    async def _stop(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tell(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        queue: asyncio.Queue[Ping] = asyncio.Queue(MAILBOX_CAPACITY)
        task = asyncio.create_task(self._sink(queue, counter))
        await _let_tasks_start()
        h.settle()
        start = time.perf_counter()
        for i in range(n):
            await queue.put(Ping(i))
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await self._stop([task])
        return elapsed

    async def _ask(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        requests: asyncio.Queue[Ping] = asyncio.Queue(MAILBOX_CAPACITY)
        replies: asyncio.Queue[int] = asyncio.Queue(MAILBOX_CAPACITY)

        async def actor() -> None:
            while True:
                msg = await requests.get()
                counter.hit()
                await replies.put(msg.n)

        task = asyncio.create_task(actor())
        await _let_tasks_start()
        h.settle()
        reply = -1
        start = time.perf_counter()
        for i in range(n):
            await requests.put(Ping(i))
            reply = await replies.get()
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await self._stop([task])
        _check_reply(reply, n - 1, self.name)
        return elapsed

    async def _fanout(self, actors: int, rounds: int) -> float:
        counter = Counter(actors * rounds, asyncio.Event())
        queues: list[asyncio.Queue[Ping]] = [asyncio.Queue(MAILBOX_CAPACITY) for _ in range(actors)]
        tasks = [asyncio.create_task(self._sink(q, counter)) for q in queues]
        await _let_tasks_start()
        h.settle()
        start = time.perf_counter()
        for r in range(rounds):
            for queue in queues:
                await queue.put(Ping(r))
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await self._stop(tasks)
        return elapsed


class AsyncioFloor(AsyncioQueue):
    """The primary floor: ``asyncio.Queue`` and one consumer task for tell and fan-out
    (inherited), and for ask one ``asyncio.Future`` per request, carried by the request,
    resolved by the consumer, awaited by the asker."""

    name = "floor"

    async def _ask(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        requests: asyncio.Queue[tuple[Ping, asyncio.Future[int]]] = asyncio.Queue(MAILBOX_CAPACITY)

        async def actor() -> None:
            while True:
                msg, reply_to = await requests.get()
                counter.hit()
                if not reply_to.done():  # the asker may have given up (as greenroom checks)
                    reply_to.set_result(msg.n)

        task = asyncio.create_task(actor())
        await _let_tasks_start()
        h.settle()
        create_future = asyncio.get_running_loop().create_future
        reply = -1
        start = time.perf_counter()
        for i in range(n):
            future: asyncio.Future[int] = create_future()
            await requests.put((Ping(i), future))
            reply = await future
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await self._stop([task])
        _check_reply(reply, n - 1, self.name)
        return elapsed

    def latency(self, askers: int, asks: int) -> list[int]:
        return run_async(f"{self.name} ask latency", lambda: self._latency(askers, asks))

    async def _latency(self, askers: int, asks: int) -> list[int]:
        requests: asyncio.Queue[tuple[Ping, asyncio.Future[int]]] = asyncio.Queue(MAILBOX_CAPACITY)

        async def actor() -> None:
            while True:
                msg, reply_to = await requests.get()
                if not reply_to.done():
                    reply_to.set_result(msg.n)

        create_future = asyncio.get_running_loop().create_future

        async def ask(i: int) -> int:
            future: asyncio.Future[int] = create_future()
            await requests.put((Ping(i), future))
            return await future

        task = asyncio.create_task(actor())
        try:
            return await _time_asks(askers, asks, ask, self.name)
        finally:
            await self._stop([task])


# --------------------------------------------------------------------------- pykka


class PykkaSink(pykka.ThreadingActor):
    def __init__(self, counter: ThreadCounter) -> None:
        super().__init__()
        self.counter = counter

    def on_receive(self, message: Any) -> Any:
        self.counter.hit()
        return message.n


class Pykka:
    """pykka ``ThreadingActor``: one thread per actor, driven from the main thread."""

    name = "pykka"

    @staticmethod
    def _wait(counter: ThreadCounter) -> None:
        if not counter.done.wait(RUN_TIMEOUT):
            raise TimeoutError(f"pykka: {counter.count} of {counter.target} messages handled")

    @staticmethod
    def _stop(refs: list[pykka.ActorRef[PykkaSink]]) -> None:
        futures = [ref.stop(block=False) for ref in refs]
        for future in futures:
            future.get(timeout=RUN_TIMEOUT)

    def tell(self, n: int) -> float:
        counter = ThreadCounter(n)
        ref = PykkaSink.start(counter)
        try:
            h.settle()
            start = time.perf_counter()
            for i in range(n):
                ref.tell(Ping(i))
            self._wait(counter)
            return time.perf_counter() - start
        finally:
            self._stop([ref])

    def ask(self, n: int) -> float:
        counter = ThreadCounter(n)
        ref = PykkaSink.start(counter)
        reply: Any = -1
        try:
            h.settle()
            start = time.perf_counter()
            for i in range(n):
                reply = ref.ask(Ping(i))
            self._wait(counter)
            elapsed = time.perf_counter() - start
        finally:
            self._stop([ref])
        _check_reply(reply, n - 1, self.name)
        return elapsed

    def fanout(self, actors: int, rounds: int) -> float:
        counter = ThreadCounter(actors * rounds)
        refs = [PykkaSink.start(counter) for _ in range(actors)]
        try:
            h.settle()
            start = time.perf_counter()
            for r in range(rounds):
                for ref in refs:
                    ref.tell(Ping(r))
            self._wait(counter)
            return time.perf_counter() - start
        finally:
            self._stop(refs)


# --------------------------------------------------------------------------- autogen-core

AUTOGEN_TOPIC = "bench"


class AutogenSink(RoutedAgent):
    def __init__(self, counter: Counter) -> None:
        super().__init__("benchmark sink")
        self.counter = counter

    @message_handler
    async def on_ping(self, message: Ping, ctx: MessageContext) -> int:
        self.counter.hit()
        return message.n


class Autogen:
    """autogen-core ``SingleThreadedAgentRuntime``: publish for one-way, send for request/reply."""

    name = "autogen"

    def tell(self, n: int) -> float:
        return run_async(f"{self.name} tell", lambda: self._tell(n))

    def ask(self, n: int) -> float:
        return run_async(f"{self.name} ask", lambda: self._ask(n))

    def fanout(self, actors: int, rounds: int) -> float:
        return run_async(f"{self.name} fan-out", lambda: self._fanout(actors, rounds))

    @staticmethod
    async def _runtime(counter: Counter) -> SingleThreadedAgentRuntime:
        runtime = SingleThreadedAgentRuntime()
        await AutogenSink.register(runtime, "sink", lambda: AutogenSink(counter))
        # A topic of type "bench" with source K reaches agent ("sink", K).
        await runtime.add_subscription(
            TypeSubscription(topic_type=AUTOGEN_TOPIC, agent_type="sink")
        )
        runtime.start()
        return runtime

    async def _tell(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        runtime = await self._runtime(counter)
        await runtime.get("sink", "default", lazy=False)
        topic = TopicId(AUTOGEN_TOPIC, "default")
        h.settle()
        start = time.perf_counter()
        for i in range(n):
            await runtime.publish_message(Ping(i), topic)
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await runtime.stop_when_idle()
        await runtime.close()
        return elapsed

    async def _ask(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        runtime = await self._runtime(counter)
        agent = await runtime.get("sink", "default", lazy=False)
        h.settle()
        reply: Any = -1
        start = time.perf_counter()
        for i in range(n):
            reply = await runtime.send_message(Ping(i), agent)
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await runtime.stop_when_idle()
        await runtime.close()
        _check_reply(reply, n - 1, self.name)
        return elapsed

    async def _fanout(self, actors: int, rounds: int) -> float:
        counter = Counter(actors * rounds, asyncio.Event())
        runtime = await self._runtime(counter)
        for k in range(actors):
            await runtime.get("sink", str(k), lazy=False)
        topics = [TopicId(AUTOGEN_TOPIC, str(k)) for k in range(actors)]
        h.settle()
        start = time.perf_counter()
        for r in range(rounds):
            for topic in topics:
                await runtime.publish_message(Ping(r), topic)
        await counter.done.wait()
        elapsed = time.perf_counter() - start
        await runtime.stop_when_idle()
        await runtime.close()
        return elapsed


# --------------------------------------------------------------------------- greenroom

GREENROOM_NAMES = ("Runtime", "Actor", "Message", "handler", "MailboxConfig", "ActorRef")


def _import_greenroom() -> Any | None:
    """greenroom, if it has the API this benchmark needs; ``None`` otherwise."""
    try:
        # The package may print while it is being built; keep that out of our output.
        with contextlib.redirect_stdout(io.StringIO()):
            import greenroom
    except ImportError:
        return None
    if not all(hasattr(greenroom, name) for name in GREENROOM_NAMES):
        return None
    return greenroom


gr = _import_greenroom()

if gr is not None:
    # At module level, so that handler annotations resolve however greenroom reads them.

    class GrPing(gr.Message):
        n: int

    class GrSink(gr.Actor):
        def __init__(self, counter: Counter) -> None:
            super().__init__()
            self.counter = counter

        @gr.handler
        async def on_ping(self, msg: GrPing) -> int:
            self.counter.hit()
            return msg.n

    class GrIdle(gr.Actor):
        @gr.handler
        async def on_ping(self, msg: GrPing) -> int:
            return msg.n


class Greenroom:
    """greenroom ``ActorRef.tell`` / ``ActorRef.ask`` to ``Actor`` handlers."""

    name = "greenroom"

    def __init__(self, greenroom: Any) -> None:
        self.gr = greenroom

    def tell(self, n: int) -> float:
        return run_async(f"{self.name} tell", lambda: self._tell(n))

    def ask(self, n: int) -> float:
        return run_async(f"{self.name} ask", lambda: self._ask(n))

    def fanout(self, actors: int, rounds: int) -> float:
        return run_async(f"{self.name} fan-out", lambda: self._fanout(actors, rounds))

    def _mailbox(self) -> Any:
        return self.gr.MailboxConfig(capacity=MAILBOX_CAPACITY, overflow="wait")

    def _runtime(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.gr.Runtime()  # type: ignore[no-any-return]

    async def _tell(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        async with self._runtime() as rt:
            ref = await rt.spawn(GrSink, args=(counter,), name="sink", mailbox=self._mailbox())
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for i in range(n):
                await ref.tell(GrPing(i))
            await counter.done.wait()
            return time.perf_counter() - start

    async def _ask(self, n: int) -> float:
        counter = Counter(n, asyncio.Event())
        reply: Any = -1
        async with self._runtime() as rt:
            ref = await rt.spawn(GrSink, args=(counter,), name="sink", mailbox=self._mailbox())
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for i in range(n):
                reply = await ref.ask(GrPing(i))
            await counter.done.wait()
            elapsed = time.perf_counter() - start
        _check_reply(reply, n - 1, self.name)
        return elapsed

    async def _fanout(self, actors: int, rounds: int) -> float:
        counter = Counter(actors * (rounds + 1), asyncio.Event())
        async with self._runtime() as rt:
            refs = [
                await rt.spawn(GrSink, args=(counter,), mailbox=self._mailbox())
                for _ in range(actors)
            ]
            # An idle actor holds no task; the floor's consumer tasks start
            # before its clock, so each actor handles one message before ours.
            for ref in refs:
                await ref.ask(GrPing(-1))
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for r in range(rounds):
                for ref in refs:
                    await ref.tell(GrPing(r))
            await counter.done.wait()
            return time.perf_counter() - start

    def latency(self, askers: int, asks: int) -> list[int]:
        return run_async(f"{self.name} ask latency", lambda: self._latency(askers, asks))

    async def _latency(self, askers: int, asks: int) -> list[int]:
        async with self._runtime() as rt:
            ref = await rt.spawn(GrIdle, name="echo", mailbox=self._mailbox())

            def ask(i: int) -> Awaitable[object]:
                return ref.ask(GrPing(i))  # type: ignore[no-any-return]

            return await _time_asks(askers, asks, ask, self.name)

    def idle_bytes(self, count: int) -> float:
        """Traced bytes per idle actor (tracemalloc), over ``count`` spawned idle actors."""
        return run_async(f"{self.name} idle footprint", lambda: self._idle_bytes(count))

    async def _idle_bytes(self, count: int) -> float:
        async with self.gr.Runtime() as rt:
            await _let_tasks_start()
            h.settle()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                refs = [await rt.spawn(GrIdle) for _ in range(count)]
                await _let_tasks_start()  # every actor has reached its idle state
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            del refs
        return grown / count


def _resident_bytes() -> int:
    """This process's resident memory now: ``/proc/self/statm`` where there is one, else
    the peak (``ru_maxrss``), which grows the same way while nothing is freed."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


async def _spawn_idle(rt: Any, count: int) -> tuple[list[Any], float, float]:
    """Spawn ``count`` idle actors under ``rt``, without tracemalloc: (their refs, seconds
    spent spawning, resident bytes grown per actor, garbage collected before each reading)."""
    await _let_tasks_start()
    h.settle()
    before = _resident_bytes()
    start = time.perf_counter()
    refs = [await rt.spawn(GrIdle) for _ in range(count)]
    seconds = time.perf_counter() - start
    await _let_tasks_start()  # every actor has reached its idle state
    gc.collect()
    return refs, seconds, (_resident_bytes() - before) / count


def idle_resident(count: int) -> dict[str, float]:
    """Spawn two batches of ``count`` idle actors in this process; the second one's spawns
    per second and resident bytes per actor. The first batch is not measured: it fills
    the memory the interpreter freed while importing, which costs no new resident pages
    and would make an actor look smaller than it is. Meant for a fresh interpreter (see
    :func:`idle_resident_fresh`), where no earlier measurement has freed more."""
    if gr is None:
        raise RuntimeError("greenroom does not export the API this benchmark needs")

    async def run() -> dict[str, float]:
        async with gr.Runtime() as rt:
            first, _, _ = await _spawn_idle(rt, count)
            second, seconds, resident = await _spawn_idle(rt, count)
            del first, second
        return {"spawn_per_second": count / seconds, "rss_bytes_per_idle_actor": resident}

    return run_async("greenroom idle resident memory", run)


def idle_resident_fresh(count: int) -> dict[str, float]:
    """:func:`idle_resident` in a fresh interpreter, so that memory freed by earlier
    measurements is not reused by the spawns (which would hide it from the RSS)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import messaging; "
        "print(json.dumps(messaging.idle_resident(int(sys.argv[2]))))"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [sys.executable, "-c", code, here, str(count)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the idle resident memory run failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def million(count: int = MILLION, sample: int = MILLION_SAMPLE) -> dict[str, Any]:
    """Spawn ``count`` idle actors in this process, then ask ``sample`` of them (chosen at
    random, seeded) once each: the figures of ``--million``."""
    if gr is None:
        raise RuntimeError("greenroom does not export the API this benchmark needs")

    async def run() -> dict[str, Any]:
        async with gr.Runtime() as rt:
            refs, seconds, resident = await _spawn_idle(rt, count)
            picked = random.Random(15).sample(range(count), sample)
            answered = 0
            failures: dict[str, int] = {}
            start = time.perf_counter()
            for k in picked:
                try:
                    reply = await refs[k].ask(GrPing(k))
                except gr.GreenroomError as error:
                    name = type(error).__name__
                    failures[name] = failures.get(name, 0) + 1
                    continue
                if reply == k:
                    answered += 1
                else:
                    failures["wrong reply"] = failures.get("wrong reply", 0) + 1
            asked = time.perf_counter() - start
            del refs
            closing = time.perf_counter()
        closed = time.perf_counter() - closing
        return {
            "actors": count,
            "spawn_seconds": seconds,
            "spawn_per_second": count / seconds,
            "rss_bytes_per_idle_actor": resident,
            "rss_bytes_total": resident * count,
            "asked": sample,
            "answered": answered,
            "failures": failures,
            "ask_seconds": asked,
            "close_seconds": closed,
        }

    return run_async("greenroom million idle actors", run, timeout=MILLION_TIMEOUT)


# --------------------------------------------------------------------------- driver


@dataclass(slots=True)
class Figures:
    """The timed runs of one contender, by pattern."""

    runs: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATTERNS})
    ops: dict[str, int] = field(default_factory=dict)

    def rate(self, pattern: str) -> float | None:
        runs = self.runs[pattern]
        return self.ops[pattern] / h.median(runs) if runs else None


class GreenroomTraced(Greenroom):
    """greenroom with tracing on: every handled message a span, recorded into the
    tracer of a real sqlite trace store on a file, whose background task drains and
    writes it as in production, every ``flush_interval`` (0.5 s); a flush that falls
    inside the timed region is counted there. What is still buffered when the clock
    stops is written then (``store.flush()``, before the runtime closes), timed
    apart, for the reference ``traced_durable_vs_untraced``."""

    name = "greenroom_traced"

    def __init__(self, greenroom: Any) -> None:
        super().__init__(greenroom)
        self._flushed = 0.0  # seconds the last run's final flush took
        self.durable: dict[str, list[float]] = {p: [] for p in PATTERNS}

    @contextlib.asynccontextmanager
    async def _traced(self) -> Any:
        import tempfile

        from greenroom.trace import SqliteTraceStore

        with tempfile.TemporaryDirectory() as tmp:
            async with (
                SqliteTraceStore(f"{tmp}/traces.db") as store,
                self.gr.Runtime(tracer=store.tracer) as rt,
            ):
                yield rt
                start = time.perf_counter()
                await store.flush()
                self._flushed = time.perf_counter() - start

    def _runtime(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._traced()  # type: ignore[no-any-return]

    def _until_written(self, pattern: str, seconds: float) -> float:
        self.durable[pattern].append(seconds + self._flushed)
        return seconds

    def tell(self, n: int) -> float:
        return self._until_written("tell", super().tell(n))

    def ask(self, n: int) -> float:
        return self._until_written("ask", super().ask(n))

    def fanout(self, actors: int, rounds: int) -> float:
        return self._until_written("fanout", super().fanout(actors, rounds))


def measure(
    contenders: list[Contender], sizes: Sizes, repeat: int, log: Callable[[str], None]
) -> dict[str, Figures]:
    """Time every pattern of every contender: an untimed warm-up at a tenth of the size,
    then ``repeat`` rounds in which the contenders take turns."""
    figures = {c.name: Figures() for c in contenders}

    def one(c: Contender, pattern: str, scale: int = 1) -> tuple[float, int]:
        if pattern == "tell":
            n = max(sizes.tell // scale, 1)
            return c.tell(n), n
        if pattern == "ask":
            n = max(sizes.ask // scale, 1)
            return c.ask(n), n
        actors = sizes.fanout_actors
        rounds = sizes.fanout_rounds if scale == 1 else 1
        return c.fanout(actors, rounds), actors * rounds

    for pattern in PATTERNS:
        log(f"{pattern}: warming up")
        for c in contenders:
            one(c, pattern, scale=10)
        for rep in range(repeat):
            for c in contenders:
                seconds, ops = one(c, pattern)
                figures[c.name].runs[pattern].append(seconds)
                figures[c.name].ops[pattern] = ops
            log(f"{pattern}: repeat {rep + 1}/{repeat} done")
    return figures


# Per contender, per number of askers: each percentile's median over the runs, in µs,
# and "samples", the asks of one run.
Latency = dict[str, dict[int, dict[str, float]]]


def measure_latency(
    contenders: list[LatencyContender], sizes: Sizes, repeat: int, log: Callable[[str], None]
) -> Latency:
    """Per-ask latency percentiles at every number of :data:`ASKERS`: an untimed warm-up
    at a tenth of the size, then ``repeat`` runs in which the contenders take turns."""
    runs: dict[str, dict[int, dict[str, list[float]]]] = {
        c.name: {a: {p: [] for p in PERCENTILES} for a in ASKERS} for c in contenders
    }
    samples: dict[str, dict[int, int]] = {c.name: {} for c in contenders}
    for askers in ASKERS:
        log(f"ask latency, {askers} askers: warming up")
        for c in contenders:
            c.latency(askers, max(sizes.latency_asks // 10, askers))
        for rep in range(repeat):
            for c in contenders:
                ordered = sorted(c.latency(askers, sizes.latency_asks))
                samples[c.name][askers] = len(ordered)
                for label, fraction in PERCENTILES.items():
                    runs[c.name][askers][label].append(h.percentile(ordered, fraction) / 1e3)
            log(f"ask latency, {askers} askers: repeat {rep + 1}/{repeat} done")
    return {
        name: {
            askers: {
                **{label: h.median(values) for label, values in by_label.items()},
                "samples": samples[name][askers],
            }
            for askers, by_label in by_askers.items()
        }
        for name, by_askers in runs.items()
    }


Rates = dict[str, dict[str, float | None]]


def greenroom_ratios(rates: Rates) -> dict[str, float | None]:
    """Every ratio of :data:`RATIOS`: greenroom's rate over the other's, ``None`` if missing."""
    ratios: dict[str, float | None] = {}
    for key, (pattern, other, _target) in RATIOS.items():
        mine = rates.get("greenroom", {}).get(pattern)
        theirs = rates[other][pattern]
        ratios[key] = mine / theirs if mine and theirs else None
    return ratios


def latency_ratios(latency: Latency) -> dict[str, float | None]:
    """greenroom's p99 over the floor's at every number of askers, ``None`` if missing."""
    ratios: dict[str, float | None] = {}
    for askers, key in LATENCY_KEYS.items():
        mine = latency.get("greenroom", {}).get(askers, {}).get("p99")
        floor = latency.get("floor", {}).get(askers, {}).get("p99")
        ratios[key] = mine / floor if mine and floor else None
    return ratios


@dataclass(frozen=True, slots=True)
class Footprint:
    """greenroom's idle actors: traced and resident bytes per actor, spawns per second."""

    traced_bytes: float
    resident_bytes: float
    spawn_per_second: float


def lower_bounds() -> dict[str, float]:
    """Every figure that must reach a target: the key and the target."""
    return {
        **{key: t for key, (_p, _o, t) in RATIOS.items() if t is not None},
        **dict.fromkeys(TRACED_KEYS.values(), TRACED_TARGET),
        "spawn_per_second": float(SPAWN_TARGET),
    }


def ceilings() -> dict[str, float]:
    """Every figure that must stay under a ceiling: the key and the ceiling."""
    return {
        **dict.fromkeys(LATENCY_KEYS.values(), LATENCY_CEILING),
        "bytes_per_idle_actor": float(IDLE_BYTES_CEILING),
        "rss_bytes_per_idle_actor": float(IDLE_RSS_CEILING),
    }


def verdicts(figures: dict[str, float | None]) -> dict[str, bool | None]:
    """Whether each bounded figure meets its target (``None``: not measured)."""
    met: dict[str, bool | None] = {}
    for key, target in lower_bounds().items():
        value = figures.get(key)
        met[key] = None if value is None else value >= target
    for key, ceiling in ceilings().items():
        value = figures.get(key)
        met[key] = None if value is None else value <= ceiling
    return met


def _verdict(met: bool | None, *, ceiling: bool = False) -> str:
    if met:
        return "ok"
    return "ABOVE" if ceiling else "BELOW"


def _ratio_rows(keys: list[str], ratios: dict[str, float | None]) -> list[list[str]]:
    rows = []
    for key in keys:
        value = ratios.get(key)
        shown = f"{value:.2f}" if value is not None else "-"
        target = lower_bounds().get(key)
        if target is None:
            rows.append([key, shown, "-", "reference"])
        else:
            met = value is not None and value >= target
            rows.append([key, shown, f">= {target:g}", _verdict(met)])
    return rows


def print_report(
    rates: Rates,
    ratios: dict[str, float | None],
    latency: Latency,
    sizes: Sizes,
    footprint: Footprint | None,
) -> None:
    """The human-readable tables: rates, rates relative to the floor, greenroom's ratios,
    ask latency beside the floor's, the idle footprint."""
    print()
    headers = ["contender", "tell msg/s", "µs/msg", "ask rt/s", "µs/rt", "fan-out msg/s", "µs/msg"]
    rows = [
        [name, *(cell for p in PATTERNS for cell in (h.fmt_rate(r[p]), h.fmt_us(r[p])))]
        for name, r in rates.items()
    ]
    h.print_table(headers, rows)

    base = rates["floor"]
    print()
    print(
        "relative to the floor (asyncio.Queue and one consumer; asks with one Future each; "
        "above 1 = faster than the floor):"
    )
    rows = [
        [name, *(f"{(r[p] or 0) / b:.2f}x" if (b := base[p]) else "-" for p in PATTERNS)]
        for name, r in rates.items()
    ]
    h.print_table(["contender", "tell", "ask", "fan-out"], rows)

    print()
    if footprint is None:
        print("greenroom ratios: skipped (greenroom API not available)")
        return
    print("greenroom over the floor (greenroom / floor; above 1 = greenroom faster):")
    h.print_table(["ratio", "value", "target", ""], _ratio_rows(list(PRIMARY_RATIOS), ratios))
    print()
    print("greenroom over the references (greenroom / other; above 1 = greenroom faster):")
    keys = [k for k in RATIOS if k not in PRIMARY_RATIOS]
    keys += [*TRACED_KEYS.values(), *DURABLE_KEYS.values()]
    h.print_table(["ratio", "value", "target", ""], _ratio_rows(keys, ratios))

    print()
    print(
        f"ask latency in µs, sequential asks to one actor from each asker, "
        f"{sizes.latency_asks:,} asks per run (median over the runs of each percentile):"
    )
    labels = list(PERCENTILES)
    headers = ["askers", *(f"floor {p}" for p in labels), *(f"greenroom {p}" for p in labels)]
    headers += ["p99 ratio", "target", ""]
    rows = []
    for askers, key in LATENCY_KEYS.items():
        floor, mine = latency["floor"][askers], latency["greenroom"][askers]
        value = ratios.get(key)
        met = value is not None and value <= LATENCY_CEILING
        rows.append(
            [
                str(askers),
                *(f"{floor[p]:.1f}" for p in labels),
                *(f"{mine[p]:.1f}" for p in labels),
                f"{value:.2f}" if value is not None else "-",
                f"<= {LATENCY_CEILING:g}",
                _verdict(met, ceiling=True),
            ]
        )
    h.print_table(headers, rows)

    traced, resident, spawn = (
        footprint.traced_bytes,
        footprint.resident_bytes,
        footprint.spawn_per_second,
    )
    print()
    print(f"idle actors ({sizes.idle_actors:,} spawned, their refs kept):")
    rows = [
        [
            "bytes_per_idle_actor (tracemalloc)",
            f"{traced:,.0f}",
            f"<= {IDLE_BYTES_CEILING:,}",
            _verdict(traced <= IDLE_BYTES_CEILING, ceiling=True),
        ],
        [
            "rss_bytes_per_idle_actor (fresh process)",
            f"{resident:,.0f}",
            f"<= {IDLE_RSS_CEILING:,}",
            _verdict(resident <= IDLE_RSS_CEILING, ceiling=True),
        ],
        [
            "spawn_per_second (fresh process)",
            h.fmt_rate(spawn),
            f">= {h.fmt_rate(SPAWN_TARGET)}",
            _verdict(spawn >= SPAWN_TARGET),
        ],
    ]
    h.print_table(["figure", "value", "target", ""], rows)


def run_million(args: h.BenchArgs) -> None:
    """``--million``: spawn a million idle actors, ask a sample of them, print the figures."""
    print(
        f"messaging benchmark (million): {MILLION:,} idle actors in one process, "
        f"then one ask to each of {MILLION_SAMPLE:,} of them",
        flush=True,
    )
    if gr is None:
        print("  !! greenroom is skipped: it does not export the API this benchmark needs")
        figures: dict[str, Any] = {}
    else:
        figures = million()
        resident = figures["rss_bytes_per_idle_actor"]
        print(
            f"spawned {MILLION:,} in {figures['spawn_seconds']:.1f} s "
            f"({h.fmt_rate(figures['spawn_per_second'])}/s, target >= "
            f"{h.fmt_rate(SPAWN_TARGET)}: {_verdict(figures['spawn_per_second'] >= SPAWN_TARGET)})"
        )
        print(
            f"resident memory {resident * MILLION / 2**30:.2f} GiB, {resident:,.0f} bytes per "
            f"idle actor (target <= {IDLE_RSS_CEILING:,}: "
            f"{_verdict(resident <= IDLE_RSS_CEILING, ceiling=True)})"
        )
        every = figures["answered"] == MILLION_SAMPLE
        print(
            f"asked {MILLION_SAMPLE:,} of them once each: {figures['answered']:,} answered "
            f"in {figures['ask_seconds']:.2f} s ({'ok' if every else 'MISSING'}"
            + (f", failures {figures['failures']}" if figures["failures"] else "")
            + f"); runtime closed in {figures['close_seconds']:.1f} s"
        )
    if args.json:
        h.emit_json(
            {
                "benchmark": "messaging",
                "mode": "million",
                "environment": h.environment(),
                "greenroom_available": gr is not None,
                **figures,
            }
        )


def main() -> None:
    args = h.parse_args(
        __doc__.splitlines()[0] if __doc__ else "messaging benchmark",
        flags={"million": "only spawn 1,000,000 idle actors and ask 1,000 of them (slow)"},
    )
    if "million" in args.flags:
        run_million(args)
        return
    sizes = QUICK if args.quick else FULL

    def log(text: str) -> None:
        print(f"  .. {text}", flush=True)

    floor = AsyncioFloor()
    contenders: list[Contender] = [floor, AsyncioQueue(), AnyioStreams(), Pykka(), Autogen()]
    latency_contenders: list[LatencyContender] = [floor]
    greenroom = Greenroom(gr) if gr is not None else None
    traced_contender = GreenroomTraced(gr) if gr is not None else None
    if greenroom is not None and traced_contender is not None:
        contenders.append(greenroom)
        contenders.append(traced_contender)
        latency_contenders.append(greenroom)

    print(
        f"messaging benchmark ({'quick' if args.quick else 'full'}, median of {args.repeat}): "
        f"tell {sizes.tell:,} msgs, ask {sizes.ask:,} round trips, fan-out "
        f"{sizes.fanout_actors:,} actors x {sizes.fanout_rounds} rounds, ask latency "
        f"{sizes.latency_asks:,} asks x {', '.join(map(str, ASKERS))} askers, "
        f"mailbox capacity {MAILBOX_CAPACITY}"
    )
    if greenroom is None:
        names = ", ".join(GREENROOM_NAMES)
        print(f"  !! greenroom is skipped: it does not export {names} yet; its ratios are null")

    wall = time.perf_counter()
    figures = measure(contenders, sizes, args.repeat, log)
    latency = measure_latency(latency_contenders, sizes, args.repeat, log)
    footprint: Footprint | None = None
    if greenroom is not None:
        log(f"idle footprint: spawning {sizes.idle_actors:,} idle actors, in a fresh process")
        fresh = idle_resident_fresh(sizes.idle_actors)
        log(f"idle footprint: spawning {sizes.idle_actors:,} idle actors, under tracemalloc")
        footprint = Footprint(
            traced_bytes=greenroom.idle_bytes(sizes.idle_actors),
            resident_bytes=fresh["rss_bytes_per_idle_actor"],
            spawn_per_second=fresh["spawn_per_second"],
        )
    wall = time.perf_counter() - wall

    rates: Rates = {c.name: {p: figures[c.name].rate(p) for p in PATTERNS} for c in contenders}
    ratios = greenroom_ratios(rates)
    traced = rates.get("greenroom_traced", {})
    for pattern in PATTERNS:
        mine, untraced = traced.get(pattern), rates.get("greenroom", {}).get(pattern)
        ratios[TRACED_KEYS[pattern]] = mine / untraced if mine and untraced else None
        durable = traced_contender.durable[pattern][-args.repeat :] if traced_contender else []
        ops = figures["greenroom_traced"].ops.get(pattern) if traced_contender else None
        written = ops / h.median(durable) if ops and durable else None
        ratios[DURABLE_KEYS[pattern]] = written / untraced if written and untraced else None
    ratios.update(latency_ratios(latency))
    print_report(rates, ratios, latency, sizes, footprint)
    print(f"\nwall time {wall:.1f} s")

    if args.json:
        bounded: dict[str, float | None] = {
            **ratios,
            "bytes_per_idle_actor": footprint.traced_bytes if footprint else None,
            "rss_bytes_per_idle_actor": footprint.resident_bytes if footprint else None,
            "spawn_per_second": footprint.spawn_per_second if footprint else None,
        }
        h.emit_json(
            {
                "benchmark": "messaging",
                "mode": "quick" if args.quick else "full",
                "repeat": args.repeat,
                "sizes": {
                    "tell": sizes.tell,
                    "ask": sizes.ask,
                    "fanout_actors": sizes.fanout_actors,
                    "fanout_rounds": sizes.fanout_rounds,
                    "idle_actors": sizes.idle_actors,
                    "latency_asks": sizes.latency_asks,
                    "askers": list(ASKERS),
                    "mailbox_capacity": MAILBOX_CAPACITY,
                },
                "environment": h.environment(),
                "greenroom_available": greenroom is not None,
                "floors": {"tell": "floor", "ask": "floor", "fanout": "floor"},
                "per_second": rates,
                "us_per_op": {
                    name: {p: (1e6 / r if r else None) for p, r in by_pattern.items()}
                    for name, by_pattern in rates.items()
                },
                "latency_us": {
                    name: {str(askers): point for askers, point in by_askers.items()}
                    for name, by_askers in latency.items()
                },
                "ratios": ratios,
                "targets": lower_bounds(),
                "ceilings": ceilings(),
                "met": verdicts(bounded),
                "bytes_per_idle_actor": bounded["bytes_per_idle_actor"],
                "rss_bytes_per_idle_actor": bounded["rss_bytes_per_idle_actor"],
                "spawn_per_second": bounded["spawn_per_second"],
                "wall_seconds": wall,
            }
        )


if __name__ == "__main__":
    main()
