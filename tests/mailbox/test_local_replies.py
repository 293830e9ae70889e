"""LocalReplies: a durable mailbox keeps local reply futures beside the bytes it stores."""

from __future__ import annotations

import asyncio

import anyio.lowlevel
import msgspec

import greenroom as gr
from greenroom.mailbox import Envelope, make_envelope
from greenroom.mailbox._replies import LocalReplies


class Ping(gr.Message):
    n: int


def _decoded(envelope: Envelope) -> Envelope:
    """The envelope as a durable mailbox hands it out: decoded from its bytes."""
    return msgspec.msgpack.decode(
        msgspec.msgpack.encode(msgspec.structs.replace(envelope, reply=None)), type=Envelope
    )


def test_a_decoded_envelope_gets_its_askers_future_back_until_it_is_answered() -> None:
    async def main() -> None:
        replies = LocalReplies()
        envelope = make_envelope("a", Ping(n=1), reply_to="node")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        envelope.reply = future
        replies.keep(envelope)
        first = _decoded(envelope)
        replies.restore(first)
        assert first.reply is future
        again = _decoded(envelope)  # redelivered after a crash of the handler
        replies.restore(again)
        assert again.reply is future
        future.set_result(2)
        late = _decoded(envelope)
        replies.restore(late)
        assert late.reply is None  # answered: nothing is kept for it any more

    asyncio.run(main())


def test_a_timed_out_asks_future_is_not_put_back_and_is_forgotten() -> None:
    async def main() -> None:
        replies = LocalReplies()
        envelope = make_envelope("a", Ping(n=1), reply_to="node")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        envelope.reply = future
        replies.keep(envelope)
        future.set_exception(gr.AskTimeout("a", "Ping", 0.1))
        future.exception()
        stale = _decoded(envelope)
        replies.restore(stale)
        assert stale.reply is None
        await anyio.lowlevel.checkpoint()  # the future's done callbacks run
        assert len(replies) == 0

    asyncio.run(main())


def test_an_envelope_without_a_future_and_a_done_future_are_not_kept() -> None:
    async def main() -> None:
        replies = LocalReplies()
        told = make_envelope("a", Ping(n=1))
        replies.keep(told)
        asked = make_envelope("a", Ping(n=2), reply_to="node")
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        asked.reply = done
        replies.keep(asked)
        for envelope in (told, asked):
            copy = _decoded(envelope)
            replies.restore(copy)
            assert copy.reply is None

    asyncio.run(main())


def test_the_first_askers_future_is_kept_for_an_id_asked_twice() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        replies = LocalReplies()
        envelope = make_envelope("a", Ping(n=1), reply_to="node", key="k")
        first: asyncio.Future[object] = loop.create_future()
        second: asyncio.Future[object] = loop.create_future()
        envelope.reply = first
        replies.keep(envelope)
        resent = msgspec.structs.replace(envelope, reply=second)
        replies.keep(resent)
        copy = _decoded(envelope)
        replies.restore(copy)
        assert copy.reply is first
        first.set_result(1)
        replies.keep(resent)  # the first is answered: a re-ask of the id is kept now
        copy = _decoded(envelope)
        replies.restore(copy)
        assert copy.reply is second

    asyncio.run(main())
