"""Poison entries in a Redis mailbox's stream never wedge it: each one is a typed dead letter.

Entries are written straight onto the actor's stream with XADD, as a foreign
or broken producer would, next to good messages, while a runtime consumes the
stream. Every good message is handled once, every bad entry becomes a letter
of the dead-letter stream with a typed error (and is acked), and the actor
keeps answering asks. Only Redis failing is an outage.
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import anyio.from_thread
import msgspec
import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import RedisMailboxes, make_envelope
from greenroom.mailbox._redis_mailbox_entries import encode_header
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record
from tests._redis_server import redis_prefix, redis_url

BOUNDARY = "redis-mailbox-entries"
DURABLE = gr.MailboxConfig(kind="durable")
TYPED = {"greenroom.UndecodableMessage", "greenroom.UnknownMessage", "greenroom.MessageTooLarge"}
TYPED |= {"greenroom.EnvelopeIdConflict"}


class Note(gr.Message):
    n: int


class Ping(gr.Message):
    pass


class Seen:
    """What the actor handled, and a wait for a set of good notes to be handled."""

    def __init__(self) -> None:
        self.counts: collections.Counter[int] = collections.Counter()
        self._want: set[int] = set()
        self._done = anyio.Event()

    def add(self, n: int) -> None:
        self.counts[n] += 1
        if self._want and self._want <= self.counts.keys():
            self._done.set()

    async def wait_for(self, want: set[int], timeout: float) -> None:
        self._want, self._done = want, anyio.Event()
        if want <= self.counts.keys():
            return
        with anyio.fail_after(timeout):
            await self._done.wait()


class Keeper(gr.Actor):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @gr.handler
    async def note(self, msg: Note) -> None:
        self.seen.add(msg.n)

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        return "pong"


class Served:
    """A runtime whose actor ``keeper`` consumes a Redis stream, and a raw client beside it."""

    def __init__(
        self,
        prefix: str,
        boxes: RedisMailboxes,
        ref: gr.ActorRef,
        client: redis.asyncio.Redis,
        seen: Seen,
    ) -> None:
        self.prefix = prefix
        self.boxes = boxes
        self.ref = ref
        self.client = client
        self.seen = seen
        self.stream = f"{prefix}{{keeper}}:s"
        self.next_good = 10**9
        self.letters_after = "-"

    def good(self) -> tuple[int, dict[bytes, bytes]]:
        self.next_good += 1
        return self.next_good, entry_of(Note(n=self.next_good))

    async def drained(self, timeout: float = 10.0) -> None:
        """Wait (pump cycle by pump cycle, never on a clock) until the stream is empty."""
        with anyio.fail_after(timeout):
            while True:
                await self.boxes.flush()
                if await self.client.xlen(self.stream) == 0:
                    await self.boxes.flush()  # the dead letters queued with the last acks
                    return

    async def letters(self) -> dict[bytes, dict[bytes, bytes]]:
        """The dead-letter stream's new letters, by the entry id they were in the actor's stream."""
        page = await self.client.xrange(self.boxes.dead_key, self.letters_after, "+")
        out: dict[bytes, dict[bytes, bytes]] = {}
        for letter_id, fields in page:
            self.letters_after = "(" + letter_id.decode()
            out[fields.get(b"id", b"")] = fields
        return out


@asynccontextmanager
async def served() -> AsyncIterator[Served]:
    prefix = redis_prefix()
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        async with (
            RedisMailboxes(redis_url(), prefix=prefix, poll=0.01) as boxes,
            gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
        ):
            seen = Seen()
            ref = await rt.spawn(Keeper, name="keeper", args=(seen,), mailbox=DURABLE)
            yield Served(prefix, boxes, ref, client, seen)
    finally:
        await client.aclose()


def entry_of(body: gr.Message, **header: Any) -> dict[bytes, bytes]:
    envelope = make_envelope("keeper", body)
    for name, value in header.items():
        setattr(envelope, name, value)
    return {b"h": encode_header(envelope), b"b": msgspec.msgpack.encode(body)}


def header_with(position: int, value: object) -> bytes:
    """A header whose field ``position`` (0 id ... 7 deadline) is ``value``."""
    envelope = make_envelope("keeper", Note(n=0))
    fields: list[object] = list(msgspec.msgpack.decode(encode_header(envelope)))
    fields[position] = value
    return msgspec.msgpack.encode(fields)


def _invalid_utf8_sender() -> bytes:
    header = encode_header(make_envelope("keeper", Note(n=0)))
    # The sender is nil (\xc0) right after the id: make it a str of invalid UTF-8.
    good = msgspec.msgpack.decode(header)
    start = b"\x98" + msgspec.msgpack.encode(good[0])
    assert header.startswith(start + b"\xc0")
    return start + b"\xa1\xff" + header[len(start) + 1 :]


HOSTILE: dict[str, dict[bytes, bytes]] = {
    "a sender of invalid UTF-8": {
        b"h": _invalid_utf8_sender(),
        b"b": msgspec.msgpack.encode(Ping()),
    },
    "a header nested 5,000 deep": {b"h": b"\x91" * 5000 + b"\x01", b"b": b"\x80"},
    "an id past 2**64": {b"h": header_with(0, 2**64 - 1), b"b": msgspec.msgpack.encode(Ping())},
    "a negative trace id": {b"h": header_with(4, -1), b"b": msgspec.msgpack.encode(Ping())},
    "created_at NaN": {b"h": header_with(6, math.nan), b"b": msgspec.msgpack.encode(Ping())},
    "deadline NaN": {b"h": header_with(7, math.nan), b"b": msgspec.msgpack.encode(Ping())},
    "an id that is a list": {b"h": header_with(0, [1]), b"b": msgspec.msgpack.encode(Ping())},
    "seven header fields": {b"h": msgspec.msgpack.encode([1, None, None, None, 1, None, 1.0])},
    "no header": {b"b": msgspec.msgpack.encode(Ping())},
    "no body": {b"h": header_with(1, None)},
    "neither header nor body": {b"x": b"y"},
    "a body tag of invalid UTF-8": {b"h": header_with(1, None), b"b": b"\x81\xa4type\xa1\xff"},
    "a body nested 5,000 deep": {b"h": header_with(1, None), b"b": b"\x91" * 5000 + b"\x01"},
}


@pytest.mark.anyio
async def test_hostile_entries_are_typed_dead_letters_and_the_mailbox_keeps_serving() -> None:
    async with served() as s:
        bad: dict[bytes, str] = {}
        goods: set[int] = set()
        for what, fields in HOSTILE.items():
            n, good = s.good()
            goods.add(n)
            await s.client.xadd(s.stream, good)  # type: ignore[arg-type]
            bad[await s.client.xadd(s.stream, fields)] = what  # type: ignore[arg-type]
        n, good = s.good()
        goods.add(n)
        await s.client.xadd(s.stream, good)  # type: ignore[arg-type]
        await s.seen.wait_for(goods, timeout=10)
        await s.drained()
        letters = await s.letters()
        for sid, what in bad.items():
            assert sid in letters, f"{what}: no dead letter"
            letter = letters[sid]
            assert letter[b"error_type"].decode() in TYPED, (what, letter[b"error_type"])
            assert letter[b"reason"] == b"invalid_message", what
            assert letter[b"actor"] == b"keeper"
            assert letter[b"h"] == HOSTILE[what].get(b"h", b""), what  # kept byte for byte
        assert all(s.seen.counts[n] == 1 for n in goods)
        assert await s.ref.ask(Ping(), timeout=5) == "pong"


@pytest.mark.anyio
async def test_an_unreadable_saved_attempt_count_is_a_dead_letter_not_an_outage() -> None:
    prefix = redis_prefix()
    stream, attempts = f"{prefix}{{keeper}}:s", f"{prefix}{{keeper}}:a"
    counts = [b"abc", b"0", b"-3", b"9" * 40, b"", b"\xff", b"1.5", b" 2", b"3"]
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        await client.xgroup_create(stream, "greenroom", id="0", mkstream=True)
        sids: dict[bytes, bytes] = {}
        for count in counts:
            envelope = make_envelope("keeper", Note(n=len(sids)))
            fields = {b"h": encode_header(envelope), b"b": msgspec.msgpack.encode(envelope.body)}
            sid = await client.xadd(stream, fields)  # type: ignore[arg-type]
            await client.hset(attempts, str(envelope.id), count)
            sids[sid] = count
        # Leave them pending for consumer "c": its next incarnation reads their attempts.
        await client.xreadgroup("greenroom", "c", {stream: ">"})
        seen = Seen()
        async with (
            RedisMailboxes(redis_url(), prefix=prefix, consumer="c") as boxes,
            gr.Runtime(mailboxes={"durable": boxes}) as rt,
        ):
            ref = await rt.spawn(Keeper, name="keeper", args=(seen,), mailbox=DURABLE)
            await seen.wait_for({len(counts) - 1}, timeout=10)  # b"3": the one readable count
            assert await ref.ask(Ping(), timeout=5) == "pong"
            with anyio.fail_after(10):
                while await client.xlen(stream):
                    await boxes.flush()
            await boxes.flush()
            letters = {f[b"id"]: f for _, f in await client.xrange(boxes.dead_key)}
        assert set(letters) == {sid for sid, count in sids.items() if count != b"3"}
        for letter in letters.values():
            assert letter[b"error_type"] == b"greenroom.UndecodableMessage"
            assert b"saved attempt count" in letter[b"error"]
        assert dict(seen.counts) == {len(counts) - 1: 1}
        assert await client.hlen(attempts) == 0  # the unreadable counts went with their entries
    finally:
        await client.aclose()


# -- fuzz ---------------------------------------------------------------------------------

_TEMPLATE_BODY = msgspec.msgpack.encode(Note(n=-7))  # flips stay far from the good notes' n
_ODD_VALUES: list[object] = [-1, 2**63, 2**64 - 1, math.nan, math.inf, "x", None, [1], {"a": 1}]
_ODD_VALUES += [b"raw", 1.5, True, "\u00e9" * 1000]


@st.composite
def hostile_entry(draw: st.DrawFn) -> dict[bytes, bytes]:
    """The fields of an entry a foreign or broken producer might XADD."""
    header = encode_header(make_envelope("keeper", Note(n=-7)))
    kinds = ["header", "body", "both", "odd", "splice", "text", "short", "missing", "extra"]
    kind = draw(st.sampled_from(kinds))
    if kind == "header":
        return {b"h": draw(hostile_bytes(header)), b"b": _TEMPLATE_BODY}
    if kind == "body":
        return {b"h": header, b"b": draw(hostile_bytes(_TEMPLATE_BODY))}
    if kind == "both":
        return {b"h": draw(hostile_bytes(header)), b"b": draw(hostile_bytes(_TEMPLATE_BODY))}
    if kind == "odd":
        position = draw(st.integers(0, 7))
        return {
            b"h": header_with(position, draw(st.sampled_from(_ODD_VALUES))),
            b"b": _TEMPLATE_BODY,
        }
    if kind == "splice":  # one field's msgpack replaced by hostile bytes (a bad str, a deep list)
        parts = [msgspec.msgpack.encode(value) for value in msgspec.msgpack.decode(header)]
        parts[draw(st.integers(0, 7))] = draw(hostile_bytes())
        return {b"h": b"\x98" + b"".join(parts), b"b": _TEMPLATE_BODY}
    if kind == "text":  # the sender or reply_to a msgpack str of random bytes (rarely UTF-8)
        parts = [msgspec.msgpack.encode(value) for value in msgspec.msgpack.decode(header)]
        raw = draw(st.binary(min_size=1, max_size=31))
        parts[draw(st.sampled_from([1, 2]))] = bytes([0xA0 | len(raw)]) + raw
        return {b"h": b"\x98" + b"".join(parts), b"b": _TEMPLATE_BODY}
    if kind == "short":
        fields = list(msgspec.msgpack.decode(header))
        size = draw(st.sampled_from([0, 1, 7, 9, 20]))
        fields = (fields * 3)[:size]
        return {b"h": msgspec.msgpack.encode(fields), b"b": _TEMPLATE_BODY}
    if kind == "missing":
        keep = draw(st.sampled_from([b"h", b"b", b"x"]))
        return {keep: header if keep == b"h" else _TEMPLATE_BODY}
    extra = draw(st.binary(min_size=1, max_size=8))
    return {b"h": header, b"b": draw(hostile_bytes(_TEMPLATE_BODY)), extra: draw(st.binary())}


async def _round(s: Served, hostile: list[dict[bytes, bytes]]) -> None:
    sids: list[bytes] = []
    goods: set[int] = set()
    for fields in hostile:
        n, good = s.good()
        goods.add(n)
        await s.client.xadd(s.stream, good)  # type: ignore[arg-type]
        sids.append(await s.client.xadd(s.stream, fields))  # type: ignore[arg-type]
    n, good = s.good()
    goods.add(n)
    await s.client.xadd(s.stream, good)  # type: ignore[arg-type]
    try:
        await s.seen.wait_for(goods, timeout=10)
        await s.drained()
        assert await s.ref.ask(Ping(), timeout=5) == "pong"
    except BaseException:
        for _ in sids:
            record(BOUNDARY, "escaped")
        raise
    letters = await s.letters()
    for sid in sids:
        letter = letters.get(sid)
        if letter is None:
            record(BOUNDARY, "accepted")  # delivered and handled (or acked as a duplicate)
            continue
        assert letter[b"error_type"].decode() in TYPED, letter
        record(BOUNDARY, "typed")
    assert all(s.seen.counts[n] == 1 for n in goods), "a good message was lost or duplicated"


@contextmanager
def portal_serving() -> Iterator[tuple[anyio.from_thread.BlockingPortal, Served]]:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(served()) as s,
    ):
        yield portal, s


def test_fuzzed_entries_never_wedge_the_mailbox_and_good_ones_are_handled_once() -> None:
    with portal_serving() as (portal, s):

        @settings(parent=FUZZ_SETTINGS, max_examples=80)
        @given(st.lists(hostile_entry(), min_size=1, max_size=5))
        def case(hostile: list[dict[bytes, bytes]]) -> None:
            portal.call(_round, s, hostile)

        case()
        assert portal.call(lambda: s.ref.ask(Ping(), timeout=5)) == "pong"
        handled_twice = [n for n, count in s.seen.counts.items() if n > 10**9 and count != 1]
        assert not handled_twice
