"""TestProbe: an actor that records what it receives, for asserting on messages in tests."""

from __future__ import annotations

from typing import TypeVar

import anyio

from greenroom._errors import GreenroomError
from greenroom.actors import Actor, ActorRef, Runtime, handler
from greenroom.mailbox import Envelope, Message

__all__ = ["ProbeTimeout", "TestProbe"]

M = TypeVar("M", bound=Message)


class ProbeTimeout(GreenroomError, AssertionError):
    """``expect`` waited in vain: names what was expected and what did arrive."""

    def __init__(self, probe: str, expected: str, timeout: float, received: list[str]) -> None:
        super().__init__(
            f"{probe} received no {expected} within {timeout:g} s; it received: "
            f"{', '.join(received) or 'nothing'}"
        )
        self.expected = expected
        self.received = received


class _ProbeActor(Actor):
    def __init__(self, probe: TestProbe) -> None:
        self.probe = probe

    @handler
    async def anything(self, msg: Message) -> None:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.probe._arrived(envelope)


class TestProbe:
    """Records every message sent to it, in order; ``expect`` waits for the next of a type.

    ::

        probe = await TestProbe.spawn(rt, name="probe")
        await worker.tell(Work(reply_to=probe.ref.name))
        done = await probe.expect(Done, timeout=1.0)

    ``received`` holds every envelope, ``expect`` consumes them in order.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self._cursor = 0
        self._arrival = anyio.Event()
        self.ref: ActorRef

    @classmethod
    async def spawn(cls, runtime: Runtime, *, name: str | None = None) -> TestProbe:
        """Start a probe actor in ``runtime``."""
        probe = cls()
        probe.ref = await runtime.spawn(_ProbeActor, name=name, args=(probe,))
        return probe

    def _arrived(self, envelope: Envelope) -> None:
        self.received.append(envelope)
        self._arrival.set()
        self._arrival = anyio.Event()

    async def expect(self, kind: type[M], *, timeout: float = 1.0) -> M:
        """The next message of type ``kind`` (earlier ones of other types are skipped).

        Raises:
            ProbeTimeout: none arrived within ``timeout`` seconds.
        """
        with anyio.move_on_after(timeout):
            while True:
                while self._cursor < len(self.received):
                    body = self.received[self._cursor].body
                    self._cursor += 1
                    if isinstance(body, kind):
                        return body
                await self._arrival.wait()
        seen = [type(e.body).__name__ for e in self.received]
        raise ProbeTimeout(self.ref.name, kind.__name__, timeout, seen)

    async def expect_nothing(self, *, within: float = 0.05) -> None:
        """Assert that no new message arrives within ``within`` seconds.

        Raises:
            AssertionError: a message arrived.
        """
        start = len(self.received)
        with anyio.move_on_after(within):
            await self._arrival.wait()
        if len(self.received) > start:
            got = type(self.received[start].body).__name__
            raise AssertionError(f"{self.ref.name} received {got}, expected nothing")
