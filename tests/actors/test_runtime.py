"""Runtime behaviour: fairness, timers, linked children, idle tasks, run and serve."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import greenroom as gr
from tests.actors._support import wait_until


class Tick(gr.Message):
    n: int = 0


class Ping(gr.Message):
    n: int


class Spin(gr.Message):
    """Keeps the busy actor busy: it re-sends itself and never suspends."""


class Busy(gr.Actor):
    def __init__(self, stop: anyio.Event) -> None:
        self.stop = stop
        self.spins = 0

    @gr.handler
    async def spin(self, msg: Spin) -> None:
        self.spins += 1
        if not self.stop.is_set():
            self.ctx.ref.tell_nowait(Spin())


class Quiet(gr.Actor):
    def __init__(self, got: anyio.Event) -> None:
        self.got = got

    @gr.handler
    async def ping(self, msg: Ping) -> None:
        self.got.set()


@pytest.mark.anyio
async def test_a_busy_actor_does_not_starve_the_others() -> None:
    stop = anyio.Event()
    got = anyio.Event()
    async with gr.Runtime() as rt:
        busy = await rt.spawn(gr.ChildSpec(actor=Busy, args=(stop,), throughput=16))
        quiet = await rt.spawn(Quiet, args=(got,))
        await busy.tell(Spin())  # from here on the busy actor never runs out of work
        await anyio.lowlevel.checkpoint()
        await quiet.tell(Ping(n=1))
        with anyio.fail_after(5):
            await got.wait()
        stop.set()
        cell = rt._system.cells[busy.name]
        assert cell.actor is not None
        spins = cell.actor.spins  # type: ignore[attr-defined]
    # the quiet actor got its turn while the busy one was mid-stream
    assert spins < 10_000


class Timed(gr.Actor):
    def __init__(self, ticks: list[int], enough: anyio.Event, want: int) -> None:
        self.ticks = ticks
        self.enough = enough
        self.want = want
        self.timer: gr.Timer | None = None

    async def on_start(self) -> None:
        self.timer = self.ctx.send_every(0.01, Tick(n=1))
        self.ctx.send_after(0.0, Tick(n=0))
        return

    @gr.handler
    async def tick(self, msg: Tick) -> None:
        self.ticks.append(msg.n)
        if len([t for t in self.ticks if t == 1]) >= self.want:
            assert self.timer is not None
            self.timer.cancel()
            self.enough.set()


@pytest.mark.anyio
async def test_send_after_fires_once_and_send_every_repeats_until_cancelled() -> None:
    ticks: list[int] = []
    enough = anyio.Event()
    async with gr.Runtime() as rt:
        await rt.spawn(Timed, args=(ticks, enough, 3))
        with anyio.fail_after(5):
            await enough.wait()
        count = len(ticks)
        # cancelled: the timer is gone from the actor's timers
        assert not rt._system.cells["timed-1"].timers
    assert ticks.count(0) == 1
    assert ticks.count(1) == 3
    assert len(ticks) == count


class Blocks(gr.Actor):
    @gr.handler
    async def ping(self, msg: Ping) -> None:
        await anyio.sleep_forever()

    @gr.handler
    async def tick(self, msg: Tick) -> None: ...


@pytest.mark.anyio
async def test_a_timer_tick_into_a_full_mailbox_is_a_dead_letter() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(
            gr.ChildSpec(actor=Blocks, mailbox=gr.MailboxConfig(capacity=1), shutdown=0.05)
        )
        await ref.tell(Ping(n=1))  # the handler blocks forever
        await ref.tell(Ping(n=2))  # fills the mailbox
        cell = rt._system.cells[ref.name]
        cell.actor.ctx.send_after(0.0, Tick())  # type: ignore[union-attr]
        await wait_until(lambda: bool(rt.dead_letters.list(reason="mailbox_full")))
        letter = rt.dead_letters.list(reason="mailbox_full")[0]
        assert isinstance(letter.envelope.body, Tick)


@pytest.mark.anyio
async def test_timers_are_cancelled_when_the_actor_restarts() -> None:
    class Restarts(gr.Actor):
        @gr.handler
        async def ping(self, msg: Ping) -> None:
            self.ctx.send_every(60, Tick())
            raise RuntimeError("crash with a timer set")

        @gr.handler
        async def tick(self, msg: Tick) -> None: ...

    async with gr.Runtime() as rt:
        ref = await rt.spawn(Restarts, retry=gr.RetryPolicy(max_attempts=1))
        with pytest.raises(gr.HandlerError):
            await ref.ask(Ping(n=1))
        assert not rt._system.cells[ref.name].timers


class Parent(gr.Actor):
    def __init__(self) -> None:
        self.helper: gr.ActorRef | None = None

    async def on_start(self) -> None:
        self.helper = await self.ctx.spawn(Quiet, name="helper", args=(anyio.Event(),))
        return

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        if msg.n < 0:
            raise RuntimeError("parent crashes")
        assert self.helper is not None
        return self.helper.name


@pytest.mark.anyio
async def test_ctx_spawn_links_the_child_to_the_spawner() -> None:
    async with gr.Runtime() as rt:
        parent = await rt.spawn(Parent, name="parent", retry=gr.RetryPolicy(max_attempts=1))
        helper_name = await parent.ask(Ping(n=1))
        assert helper_name == "helper"
        helper = rt.ref("helper")
        # the parent's restart stops its linked helper; the new instance spawns a new one
        with pytest.raises(gr.HandlerError):
            await parent.ask(Ping(n=-1))
        assert await parent.ask(Ping(n=1)) == "helper"
        assert rt.ref("helper") is not None
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        ids = [c.id for c in await root.which_children()]
        assert ids.count("helper") == 1
        del helper


@pytest.mark.anyio
async def test_an_idle_actor_gives_its_task_back_and_comes_back_on_the_next_message() -> None:
    async with gr.Runtime(gr.RuntimeConfig(idle_release=0.01)) as rt:
        got = anyio.Event()
        ref = await rt.spawn(Quiet, args=(got,))
        await ref.tell(Ping(n=1))
        with anyio.fail_after(5):
            await got.wait()
        cell = rt._system.cells[ref.name]
        await wait_until(lambda: cell.task is None)
        assert rt.statistics().idle_tasks == 0
        got2 = anyio.Event()
        cell.actor.got = got2  # type: ignore[union-attr]
        await ref.tell(Ping(n=2))
        with anyio.fail_after(5):
            await got2.wait()


SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    import anyio.lowlevel
    import greenroom as gr

    class Work(gr.Message):
        n: int

    class Worker(gr.Actor):
        @gr.handler
        async def work(self, msg: Work) -> None:
            await anyio.lowlevel.checkpoint()  # a handler that yields, as real work does
            print("handled", msg.n, flush=True)

        async def on_stop(self) -> None:
            print("stopped", flush=True)

    async def setup(rt: gr.Runtime) -> None:
        ref = await rt.spawn(Worker, name="worker")
        for n in range(50):
            await ref.tell(Work(n=n))

    def ready(rt: gr.Runtime) -> None:
        print("ready", flush=True)

    gr.run(lambda: gr.serve(setup, ready=ready, drain_timeout=10))
    print("exited", flush=True)
    """
)


def test_serve_drains_and_stops_the_tree_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "serve_it.py"
    script.write_text(SERVE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(gr.__file__).parent.parent)}
    # Unbuffered: a buffered readline could swallow lines that communicate() then misses.
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, bufsize=0, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    raw, _ = proc.communicate(timeout=30)
    out = raw.decode()
    lines = out.split()
    assert proc.returncode == 0
    # every message was handled before the tree stopped, then the process exited
    handled = [line for line in out.splitlines() if line.startswith("handled")]
    assert len(handled) == 50
    assert out.splitlines()[-2:] == ["stopped", "exited"]
    assert lines


class Boom(gr.Message):
    pass


class Fragile(gr.Actor):
    @gr.handler
    async def boom(self, msg: Boom) -> None:
        raise RuntimeError("boom")


@pytest.mark.anyio
async def test_serve_returns_with_the_root_error_when_the_root_gives_up() -> None:
    async def setup(rt: gr.Runtime) -> None:
        ref = await rt.spawn(Fragile, name="fragile")
        await ref.tell(Boom())

    # No signal ever comes: serve must end on the root's failure alone.
    with anyio.fail_after(10), pytest.raises(gr.Escalated, match="root gave up"):
        await gr.serve(setup, config=gr.RuntimeConfig(root_max_restarts=0))


def test_supervision_example_shows_a_restart_and_in_order_handling() -> None:
    root = Path(gr.__file__).parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "supervision.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "restart | shop/orders/0 after ConnectionError" in out
    assert "on attempt 2" in out
    assert "HandlerError" in out
    assert "after 3 attempt(s)" in out
    assert "ada's orders handled in order across the restart: True" in out
    assert "dead | shop/orders/2: Order after 3 attempts" in out


class Stubborn(gr.Actor):
    """A handler that swallows cancellation (until the test lets it go): the bug
    the runtime's exit must survive."""

    let_go = False

    @gr.handler
    async def ping(self, msg: Ping) -> None:
        import asyncio

        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if Stubborn.let_go:
                    raise


@pytest.mark.anyio
async def test_exit_is_bounded_even_when_a_handler_swallows_cancellation() -> None:
    import asyncio

    Stubborn.let_go = False
    config = gr.RuntimeConfig(shutdown_timeout=0.2)
    with anyio.fail_after(10):
        async with gr.Runtime(config) as rt:
            ref = await rt.spawn(gr.ChildSpec(actor=Stubborn, shutdown=0.05))
            await ref.tell(Ping(n=1))
            await anyio.lowlevel.checkpoint()
    # the runtime gave up on the stubborn task instead of hanging; now end it
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == ref.name]
    Stubborn.let_go = True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class SlowStart(gr.Actor):
    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate

    async def on_start(self) -> None:
        await self.gate.wait()

    @gr.handler
    async def ping(self, msg: Ping) -> int:
        return msg.n


@pytest.mark.anyio
async def test_spawn_waits_for_on_start_up_to_the_start_timeout_not_the_ask_timeout() -> None:
    import asyncio

    config = gr.RuntimeConfig(ask_timeout=0.05, start_timeout=0.3, shutdown_timeout=0.5)
    async with gr.Runtime(config) as rt:
        slow = anyio.Event()
        asyncio.get_running_loop().call_later(0.1, slow.set)  # on_start takes ~0.1 s
        ref = await rt.spawn(SlowStart, name="slow", args=(slow,))  # > ask_timeout: fine
        assert await ref.ask(Ping(n=3)) == 3
        with pytest.raises(gr.AskTimeout):
            await rt.spawn(SlowStart, name="stuck", args=(anyio.Event(),))
