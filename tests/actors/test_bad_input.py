"""Bad input gets a typed error and a dead letter, and the runtime keeps serving."""

from __future__ import annotations

import msgspec
import pytest

import greenroom as gr


class Ping(gr.Message):
    n: int


class Other(gr.Message):
    pass


class Blob(gr.Message):
    data: bytes


class NotFrozen(msgspec.Struct, tag=True):
    n: int


class NotTagged(msgspec.Struct, frozen=True):
    n: int


class Unencodable(gr.Message):
    thing: object


class Echo(gr.Actor):
    @gr.handler
    async def ping(self, msg: Ping) -> int:
        return msg.n

    @gr.handler
    async def blob(self, msg: Blob) -> int:
        return len(msg.data)


@pytest.mark.anyio
async def test_unknown_message_type_gives_unknown_message_and_a_dead_letter() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, name="echo")
        with pytest.raises(gr.UnknownMessage) as info:
            await ref.ask(Other())
        assert info.value.accepted == ("Blob", "Ping")
        await ref.tell(Other())  # a tell: no error to raise, but a dead letter
        assert await ref.ask(Ping(n=1)) == 1
        letters = rt.dead_letters.list(actor="echo", reason="unknown_message")
        assert len(letters) == 2
        assert letters[0].error.type == "greenroom.UnknownMessage"
        assert rt.statistics().dead_letters == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"n": 1}, "not a msgspec Struct"),
        (42, "not a msgspec Struct"),
        (NotFrozen(n=1), "not frozen"),
        (NotTagged(n=1), "no tag"),
    ],
)
@pytest.mark.anyio
async def test_body_that_is_not_a_registered_struct_raises_invalid_message(
    body: object, reason: str
) -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, name="echo")
        with pytest.raises(gr.InvalidMessage, match=reason):
            await ref.tell(body)
        with pytest.raises(gr.InvalidMessage):
            await ref.ask(body)
        with pytest.raises(gr.InvalidMessage):
            ref.tell_nowait(body)
        assert len(rt.dead_letters.list(reason="invalid_message")) == 3
        assert await ref.ask(Ping(n=2)) == 2


@pytest.mark.anyio
async def test_unencodable_body_is_invalid_message() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo)
        with pytest.raises(gr.InvalidMessage, match="cannot be encoded"):
            await ref.tell(Unencodable(thing=object()))
        assert rt.dead_letters.list(reason="invalid_message")


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["list", "map"])
async def test_a_message_nested_too_deep_is_invalid_at_send_and_the_actor_serves_on(
    kind: str,
) -> None:
    from tests._fuzz import deep

    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, name="echo")
        body = Unencodable(thing=deep(990, kind=kind))
        with pytest.raises(gr.InvalidMessage, match="cannot be encoded"):
            await ref.tell(body)
        with pytest.raises(gr.InvalidMessage, match="cannot be encoded"):
            await ref.ask(body)
        with pytest.raises(gr.InvalidMessage, match="cannot be encoded"):
            ref.tell_nowait(body)
        assert len(rt.dead_letters.list(reason="invalid_message")) == 3
        assert await ref.ask(Ping(n=7)) == 7


@pytest.mark.anyio
async def test_message_over_the_size_limit_raises_message_too_large() -> None:
    async with gr.Runtime(gr.RuntimeConfig(max_message_bytes=1024)) as rt:
        ref = await rt.spawn(Echo, name="echo")
        with pytest.raises(gr.MessageTooLarge) as info:
            await ref.ask(Blob(data=b"x" * 2000))
        assert info.value.limit == 1024
        assert info.value.size > 2000
        with pytest.raises(gr.MessageTooLarge):
            await ref.tell(Blob(data=b"x" * 2000))
        assert await ref.ask(Blob(data=b"x" * 100)) == 100
        letters = rt.dead_letters.list(reason="too_large")
        assert len(letters) == 2
        assert letters[0].actor == "echo"


@pytest.mark.anyio
async def test_full_mailbox_in_fail_fast_mode_raises_mailbox_full() -> None:
    import anyio

    gate = anyio.Event()
    entered = anyio.Event()
    drained = anyio.Event()

    class Slow(gr.Actor):
        @gr.handler
        async def ping(self, msg: Ping) -> int:
            if msg.n == 0:
                entered.set()
                await gate.wait()
            if msg.n == 2:
                drained.set()
            return msg.n

    async with gr.Runtime() as rt:
        ref = await rt.spawn(
            gr.ChildSpec(actor=Slow, mailbox=gr.MailboxConfig(capacity=2, overflow="fail"))
        )
        await ref.tell(Ping(n=0))
        with anyio.fail_after(5):
            await entered.wait()
        await ref.tell(Ping(n=1))
        await ref.tell(Ping(n=2))
        with pytest.raises(gr.MailboxFull) as info:
            await ref.tell(Ping(n=3))
        assert info.value.capacity == 2
        with pytest.raises(gr.MailboxFull):
            ref.tell_nowait(Ping(n=4))
        with pytest.raises(gr.MailboxFull):
            await ref.ask(Ping(n=5))
        assert len(rt.dead_letters.list(reason="mailbox_full")) == 3
        gate.set()
        with anyio.fail_after(5):
            await drained.wait()
        assert await ref.ask(Ping(n=6)) == 6


@pytest.mark.anyio
async def test_encode_messages_debug_setting_hands_the_handler_a_copy() -> None:
    received: list[Ping] = []

    class Keep(gr.Actor):
        @gr.handler
        async def ping(self, msg: Ping) -> None:
            received.append(msg)

    original = Ping(n=7)
    async with gr.Runtime(gr.RuntimeConfig(encode_messages=True)) as rt:
        ref = await rt.spawn(Keep)
        await ref.ask(original)
    assert received == [original]
    assert received[0] is not original


def test_handler_for_a_type_that_is_not_a_message_is_invalid_spec() -> None:
    class Bad(gr.Actor):
        @gr.handler
        async def handle(self, msg: int) -> None: ...

    async def main() -> None:
        async with gr.Runtime() as rt:
            await rt.spawn(Bad)

    with pytest.raises(gr.InvalidSpec, match=r"not a greenroom\.Message"):
        gr.run(main)


def test_two_handlers_for_one_type_is_invalid_spec() -> None:
    class Twice(gr.Actor):
        @gr.handler
        async def one(self, msg: Ping) -> None: ...

        @gr.handler
        async def two(self, msg: Ping) -> None: ...

    async def main() -> None:
        async with gr.Runtime() as rt:
            await rt.spawn(Twice)

    with pytest.raises(gr.InvalidSpec, match="both handle Ping"):
        gr.run(main)


def test_ctx_in_init_is_a_usage_error_that_names_the_fix() -> None:
    class Early(gr.Actor):
        def __init__(self) -> None:
            self.name = self.ctx.name

    async def main() -> None:
        async with gr.Runtime() as rt:
            await rt.spawn(Early)

    with pytest.raises(gr.UsageError, match="on_start"):
        gr.run(main)
