"""Replies to remote asks: any entry on a reply stream is a value or a typed error, at once.

Hostile entries are written straight onto a node's reply stream with XADD,
naming asks that wait there. Each waiting caller gets its value or a typed
error (``RemoteError`` ``InvalidReply`` when the reply does not decode) as
soon as the entry is read, never a hang until its timeout; the reader task
keeps reading, so good replies next to bad ones still arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.from_thread
import msgspec
import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from greenroom import Actor, MailboxConfig, Message, Runtime, handler
from greenroom._errors import GreenroomError, HandlerError, UsageError
from greenroom.cluster import Node, RemoteError
from greenroom.cluster._keys import Keys
from greenroom.cluster._replies import Failure, Replies
from greenroom.mailbox import RedisMailboxes
from greenroom.trace import new_id
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record
from tests._redis_server import redis_prefix, redis_url

BOUNDARY = "cluster-replies"


class Charge(Message, frozen=True):
    cents: int


class Receipt(msgspec.Struct, frozen=True):
    account: str
    total: int


class Billing(Actor):
    @handler
    async def charge(self, msg: Charge) -> dict[str, object]:
        return {"account": "x", "total": msg.cents}


@contextlib.asynccontextmanager
async def node_in(prefix: str, name: str) -> AsyncIterator[Node]:
    async with (
        RedisMailboxes(redis_url(), prefix=prefix, consumer=name, poll=0.01) as boxes,
        Runtime(mailboxes={"redis": boxes}) as rt,
        Node(rt, boxes, name=name, heartbeat=30.0, takeover=60.0) as node,
    ):
        yield node


GOOD_FAILURE = msgspec.msgpack.encode(Failure("HandlerError", "billing", "Charge", "E", "boom"))
HOSTILE_REPLIES: dict[str, dict[bytes, bytes]] = {
    "a result nested 5,000 deep": {b"r": b"\x91" * 5000 + b"\x01"},
    "a result str of invalid UTF-8": {b"r": b"\xa2\xc3\x28"},
    "a result that is not msgpack": {b"r": b"\xc1"},
    "a failure of random bytes": {b"e": b"\x00\xff\xfe"},
    "a failure with a str of invalid UTF-8": {b"e": GOOD_FAILURE.replace(b"boom", b"bo\xffm")},
    "a failure nested deep": {b"e": b"\x97" + b"\x91" * 3000 + b"\x01"},
    "neither a result nor a failure": {b"x": b"y"},
}


@pytest.mark.anyio
async def test_an_undecodable_reply_fails_its_ask_at_once_and_the_reader_reads_on() -> None:
    prefix = redis_prefix()
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
            await a.runtime.spawn(Billing, name="billing", mailbox=MailboxConfig(kind="redis"))
            for what, reply in HOSTILE_REPLIES.items():
                stream = f"{prefix}{{nobody}}:s"
                result: dict[str, BaseException] = {}

                async def ask(result: dict[str, BaseException] = result) -> None:
                    try:
                        await b.ref("nobody").ask(Charge(cents=1), timeout=60)
                    except Exception as failed:
                        result["error"] = failed

                with anyio.fail_after(5):  # far below the ask's 60 s: "at once"
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(ask)
                        # Nobody hosts the actor: read the ask from its stream to answer it.
                        # XREAD BLOCK: Redis answers as soon as the ask's entry lands.
                        read = await client.xread({stream: "0-0"}, count=1, block=5000)
                        sid, fields = read[0][1][0]
                        await client.xdel(stream, sid)
                        correlation_id = msgspec.msgpack.decode(fields[b"h"])[3]
                        await client.xadd(
                            f"{prefix}reply:{{b}}",
                            {b"c": str(correlation_id).encode(), **reply},  # type: ignore[dict-item]
                        )
                error = result.get("error")
                assert isinstance(error, RemoteError), (what, error)
                assert error.error_type == "InvalidReply", what
                assert "cannot be decoded" in error.error_message
                # The reader still reads: a real ask next to it is answered.
                billing = b.ref("billing")
                assert await billing.ask(Charge(cents=3), timeout=5) == {
                    "account": "x",
                    "total": 3,
                }
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_returns_type_msgspec_cannot_decode_is_a_usage_error_before_sending() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        with pytest.raises(UsageError, match="returns="):
            await a.ref("billing").ask(Charge(cents=1), timeout=5, returns=object())  # type: ignore[arg-type]
        async with redis.asyncio.Redis.from_url(redis_url()) as client:
            assert await client.xlen(f"{prefix}{{billing}}:s") == 0


# -- fuzz ---------------------------------------------------------------------------------

GOOD_RESULT = msgspec.msgpack.encode({"account": "x", "total": 5})
RETURNS: list[Any] = [None, int, list[int], dict[str, Any], Receipt]


@st.composite
def hostile_reply(draw: st.DrawFn) -> tuple[str, dict[bytes, bytes]]:
    """A reply entry a broken or foreign node might write, and how its ask is named."""
    kind = draw(st.sampled_from(["result", "failure", "both", "splice", "cid", "no_cid", "none"]))
    if kind == "result":
        return "named", {b"r": draw(hostile_bytes(GOOD_RESULT))}
    if kind == "failure":
        return "named", {b"e": draw(hostile_bytes(GOOD_FAILURE))}
    if kind == "both":
        return "named", {b"r": draw(hostile_bytes(GOOD_RESULT)), b"e": draw(hostile_bytes())}
    if kind == "splice":  # one field of a failure replaced by hostile bytes
        parts = [msgspec.msgpack.encode(v) for v in msgspec.msgpack.decode(GOOD_FAILURE)]
        parts[draw(st.integers(0, len(parts) - 1))] = draw(hostile_bytes())
        return "named", {b"e": bytes([0x90 | len(parts)]) + b"".join(parts)}
    if kind == "cid":  # a correlation id that names no ask: skipped, counted
        cid = draw(st.sampled_from([b"", b"-1", b" 1", b"1_0", b"9" * 40, b"\xff", b"0x10"]))
        return "unnamed", {b"c": cid, b"r": GOOD_RESULT}
    if kind == "no_cid":
        return "unnamed", {b"r": draw(hostile_bytes(GOOD_RESULT))}
    return "named", {}  # only its 'c': neither a result nor a failure


class Reader:
    """A Replies reader on a stream of its own, and a raw client to write that stream."""

    def __init__(self, replies: Replies, client: redis.asyncio.Redis, stream: str) -> None:
        self.replies = replies
        self.client = client
        self.stream = stream


@contextlib.asynccontextmanager
async def reading() -> AsyncIterator[Reader]:
    prefix = redis_prefix()
    keys = Keys(prefix)
    client = redis.asyncio.Redis.from_url(redis_url())
    replies = Replies(client, keys, "n", maxlen=10_000)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(replies.read)
            yield Reader(replies, client, keys.reply("n"))
            replies.closing = True
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()


async def _round(reader: Reader, cases: list[tuple[str, dict[bytes, bytes]]], returns: Any) -> None:
    replies = reader.replies
    goods: list[asyncio.Future[Any]] = []
    futures: list[asyncio.Future[Any] | None] = []
    for naming, fields in cases:
        good_id = new_id()
        goods.append(replies.expect(good_id, dict[str, Any]))
        await reader.client.xadd(reader.stream, {b"c": str(good_id).encode(), b"r": GOOD_RESULT})
        if naming == "named":
            cid = new_id()
            futures.append(replies.expect(cid, returns))
            fields = {b"c": str(cid).encode(), **fields}
        else:
            futures.append(None)
        await reader.client.xadd(reader.stream, fields)  # type: ignore[arg-type]
    last_id = new_id()
    last = replies.expect(last_id, None)
    await reader.client.xadd(reader.stream, {b"c": str(last_id).encode(), b"r": GOOD_RESULT})
    try:
        with anyio.fail_after(5):  # replies are read as they land: no case waits for a timeout
            assert await last == {"account": "x", "total": 5}
            for good in goods:
                assert await good == {"account": "x", "total": 5}
    except BaseException:
        for _ in cases:
            record(BOUNDARY, "escaped")
        raise
    for future in futures:
        if future is None:
            record(BOUNDARY, "typed")  # named no ask: skipped and counted in ``malformed``
            continue
        assert future.done(), "a named ask was not settled by its reply"
        error = future.exception()
        if error is None:
            record(BOUNDARY, "accepted")
        elif isinstance(error, GreenroomError):
            record(BOUNDARY, "typed")
        else:
            record(BOUNDARY, "escaped")
            raise AssertionError(f"an untyped error reached the caller: {error!r}")


@contextlib.contextmanager
def portal_reading() -> Iterator[tuple[anyio.from_thread.BlockingPortal, Reader]]:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(reading()) as reader,
    ):
        yield portal, reader


def test_fuzzed_reply_entries_settle_their_asks_and_the_reader_keeps_reading() -> None:
    with portal_reading() as (portal, reader):

        @settings(parent=FUZZ_SETTINGS, max_examples=120)
        @given(st.lists(hostile_reply(), min_size=1, max_size=4), st.sampled_from(RETURNS))
        def case(cases: list[tuple[str, dict[bytes, bytes]]], returns: Any) -> None:
            portal.call(_round, reader, cases, returns)

        case()
        assert reader.replies.malformed > 0


def test_a_handler_failure_reply_rebuilds_its_greenroom_error() -> None:
    """The good failure the fuzz starts from decodes into the error it describes."""
    error = msgspec.msgpack.decode(GOOD_FAILURE, type=Failure).error()
    assert isinstance(error, HandlerError)
    assert error.error_message == "boom"
