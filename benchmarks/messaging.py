"""Messaging throughput of greenroom against raw anyio, asyncio.Queue, pykka and autogen-core.

Run::

    uv run benchmarks/messaging.py [--quick] [--json] [--repeat N]

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

Sizes: tell 50,000 messages, ask 10,000 round trips, fan-out 1,000 actors x 10
rounds, 5 repeats (--quick: 10,000 / 2,000 / 1,000 x 3, 3 repeats). Each
pattern starts with an untimed warm-up of every contender at a tenth of the size.

The contenders do the same work per message (one counter increment in the
handler, the reply is the message's number) and use the same completion
signal; only the transport differs:

``anyio``
    Raw anyio memory object streams the plain way: ``await send`` and
    ``async for`` receive, one task per actor, asks ping-pong through a reply
    stream. This is the baseline every ratio is named after.
``asyncio_queue``
    Plain ``asyncio.Queue``, one task per actor, asks through a reply queue:
    the floor of what CPython's event loop does, printed for reference.
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
    ``ActorRef.tell`` / ``ActorRef.ask`` to ``greenroom.Actor`` handlers. While
    the package does not export the API yet, it is skipped with a notice and
    its ratios are ``null``.
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

The bounded contenders (anyio, asyncio.Queue, greenroom) all get a mailbox of
``MAILBOX_CAPACITY`` messages and wait when it is full; pykka and autogen-core
have unbounded queues. Setup (spawning, thread start, agent instantiation) and
teardown are outside the timed region; garbage is collected before each timed
region; contenders are interleaved within each repeat so that a noisy moment
does not hit one of them only. Each figure is the median of the repeats.

How to read the ratios: ``<pattern>_vs_<other>`` is greenroom's throughput
divided by the other's, so above 1 means greenroom is faster. The issue's
targets are printed next to them.

Idle footprint: greenroom spawns 100,000 idle actors (10,000 with --quick).
``spawn_per_second`` comes from a run without tracemalloc;
``bytes_per_idle_actor`` from a second run under tracemalloc (traced memory
after the spawns minus before, divided by the count; the ``ActorRef`` the
caller keeps is included).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
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


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each measurement does; the same for every contender."""

    tell: int
    ask: int
    fanout_actors: int
    fanout_rounds: int
    idle_actors: int


FULL = Sizes(
    tell=50_000,
    ask=10_000,
    fanout_actors=1_000,
    fanout_rounds=10,
    idle_actors=100_000,
)
QUICK = Sizes(
    tell=10_000,
    ask=2_000,
    fanout_actors=1_000,
    fanout_rounds=3,
    idle_actors=10_000,
)

PATTERNS = ("tell", "ask", "fanout")
TRACED_TARGET = 0.75  # tracing on, with a sqlite trace store, vs tracing off (every pattern)
TRACED_KEYS = {
    p: "traced_vs_untraced" if p == "tell" else f"traced_vs_untraced_{p}" for p in PATTERNS
}
DURABLE_KEYS = {p: k.replace("traced_vs", "traced_durable_vs") for p, k in TRACED_KEYS.items()}

# greenroom's throughput / the other's, and the target the issue sets (None: reference only).
RATIOS: dict[str, tuple[str, str, float | None]] = {
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
IDLE_BYTES_TARGET = 3 * 1024


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


def run_async(what: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one measurement in a fresh event loop, bounded by :data:`RUN_TIMEOUT`."""

    async def bounded() -> T:
        deadline = asyncio.timeout(RUN_TIMEOUT)
        try:
            async with deadline:
                return await factory()
        except TimeoutError as error:
            if deadline.expired():
                raise RuntimeError(f"{what} did not finish within {RUN_TIMEOUT:g} s") from error
            raise

    return asyncio.run(bounded())


async def _let_tasks_start() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def _check_reply(reply: object, expected: int, who: str) -> None:
    if reply != expected:
        raise AssertionError(f"{who}: reply {reply!r}, expected {expected!r}")


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
    """Plain ``asyncio.Queue``: the floor of what CPython's event loop does."""

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
        counter = Counter(actors * rounds, asyncio.Event())
        async with self._runtime() as rt:
            refs = [
                await rt.spawn(GrSink, args=(counter,), mailbox=self._mailbox())
                for _ in range(actors)
            ]
            await _let_tasks_start()
            h.settle()
            start = time.perf_counter()
            for r in range(rounds):
                for ref in refs:
                    await ref.tell(GrPing(r))
            await counter.done.wait()
            return time.perf_counter() - start

    def idle(self, count: int, *, traced: bool) -> tuple[float, int]:
        """Spawn ``count`` idle actors: (seconds spent spawning, traced bytes or 0)."""
        return run_async(f"{self.name} idle spawn", lambda: self._idle(count, traced=traced))

    async def _idle(self, count: int, *, traced: bool) -> tuple[float, int]:
        async with self.gr.Runtime() as rt:
            await _let_tasks_start()
            h.settle()
            if traced:
                tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0] if traced else 0
            start = time.perf_counter()
            refs = [await rt.spawn(GrIdle) for _ in range(count)]
            elapsed = time.perf_counter() - start
            await _let_tasks_start()  # every actor has reached its idle state
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before if traced else 0
            if traced:
                tracemalloc.stop()
            del refs
        return elapsed, grown


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


Rates = dict[str, dict[str, float | None]]


def greenroom_ratios(rates: Rates) -> dict[str, float | None]:
    """Every ratio of :data:`RATIOS`: greenroom's rate over the other's, ``None`` if missing."""
    ratios: dict[str, float | None] = {}
    for key, (pattern, other, _target) in RATIOS.items():
        mine = rates.get("greenroom", {}).get(pattern)
        theirs = rates[other][pattern]
        ratios[key] = mine / theirs if mine and theirs else None
    return ratios


def print_report(
    rates: Rates,
    ratios: dict[str, float | None],
    sizes: Sizes,
    idle: tuple[float, float] | None,
) -> None:
    """The human-readable tables: rates, rates relative to anyio, greenroom's ratios."""
    print()
    headers = ["contender", "tell msg/s", "µs/msg", "ask rt/s", "µs/rt", "fan-out msg/s", "µs/msg"]
    rows = [
        [name, *(cell for p in PATTERNS for cell in (h.fmt_rate(r[p]), h.fmt_us(r[p])))]
        for name, r in rates.items()
    ]
    h.print_table(headers, rows)

    base = rates["anyio"]
    print()
    print("relative to raw anyio streams (above 1 = faster than anyio):")
    rows = [
        [name, *(f"{(r[p] or 0) / b:.2f}x" if (b := base[p]) else "-" for p in PATTERNS)]
        for name, r in rates.items()
    ]
    h.print_table(["contender", "tell", "ask", "fan-out"], rows)

    print()
    if idle is None:
        print("greenroom ratios: skipped (greenroom API not available)")
        return
    print("greenroom ratios (greenroom / other; above 1 = greenroom faster):")
    rows = []
    for key, (_p, _o, target) in RATIOS.items():
        value = ratios[key]
        shown = f"{value:.2f}" if value is not None else "-"
        if target is None:
            rows.append([key, shown, "-", "reference"])
        else:
            met = value is not None and value >= target
            rows.append([key, shown, f">= {target:g}", "ok" if met else "BELOW"])
    for key in TRACED_KEYS.values():
        value = ratios.get(key)
        shown = f"{value:.2f}" if value is not None else "-"
        met = value is not None and value >= TRACED_TARGET
        rows.append([key, shown, f">= {TRACED_TARGET:g}", "ok" if met else "BELOW"])
    for key in DURABLE_KEYS.values():
        value = ratios.get(key)
        rows.append([key, f"{value:.2f}" if value is not None else "-", "-", "reference"])
    h.print_table(["ratio", "value", "target", ""], rows)

    idle_bytes, spawn_rate = idle
    verdict = "ok" if idle_bytes < IDLE_BYTES_TARGET else "ABOVE"
    print()
    print(
        f"idle actors: {sizes.idle_actors:,} spawned at {h.fmt_rate(spawn_rate)}/s, "
        f"{idle_bytes:,.0f} bytes per idle actor (target < {IDLE_BYTES_TARGET}: {verdict})"
    )


def main() -> None:
    args = h.parse_args(__doc__.splitlines()[0] if __doc__ else "messaging benchmark")
    sizes = QUICK if args.quick else FULL

    def log(text: str) -> None:
        print(f"  .. {text}", flush=True)

    contenders: list[Contender] = [AnyioStreams(), AsyncioQueue(), Pykka(), Autogen()]
    greenroom = Greenroom(gr) if gr is not None else None
    traced_contender = GreenroomTraced(gr) if gr is not None else None
    if greenroom is not None and traced_contender is not None:
        contenders.append(greenroom)
        contenders.append(traced_contender)

    print(
        f"messaging benchmark ({'quick' if args.quick else 'full'}, median of {args.repeat}): "
        f"tell {sizes.tell:,} msgs, ask {sizes.ask:,} round trips, fan-out "
        f"{sizes.fanout_actors:,} actors x {sizes.fanout_rounds} rounds, "
        f"mailbox capacity {MAILBOX_CAPACITY}"
    )
    if greenroom is None:
        names = ", ".join(GREENROOM_NAMES)
        print(f"  !! greenroom is skipped: it does not export {names} yet; its ratios are null")

    wall = time.perf_counter()
    figures = measure(contenders, sizes, args.repeat, log)
    idle: tuple[float, float] | None = None  # (bytes per idle actor, spawns per second)
    if greenroom is not None:
        log(f"idle footprint: spawning {sizes.idle_actors:,} idle actors")
        seconds, _ = greenroom.idle(sizes.idle_actors, traced=False)
        _, grown = greenroom.idle(sizes.idle_actors, traced=True)
        idle = (grown / sizes.idle_actors, sizes.idle_actors / seconds)
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
    print_report(rates, ratios, sizes, idle)
    print(f"\nwall time {wall:.1f} s")

    if args.json:
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
                    "mailbox_capacity": MAILBOX_CAPACITY,
                },
                "environment": h.environment(),
                "greenroom_available": greenroom is not None,
                "per_second": rates,
                "us_per_op": {
                    name: {p: (1e6 / r if r else None) for p, r in by_pattern.items()}
                    for name, by_pattern in rates.items()
                },
                "ratios": ratios,
                "targets": {
                    **{key: t for key, (_p, _o, t) in RATIOS.items() if t is not None},
                    **dict.fromkeys(TRACED_KEYS.values(), TRACED_TARGET),
                },
                "bytes_per_idle_actor": idle[0] if idle else None,
                "spawn_per_second": idle[1] if idle else None,
                "wall_seconds": wall,
            }
        )


if __name__ == "__main__":
    main()
