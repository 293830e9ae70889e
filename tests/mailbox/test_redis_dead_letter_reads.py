"""Reading the Redis dead-letter stream back: any entry is a letter, never an exception.

Entries of any shape are written straight onto ``<prefix>dead`` with XADD (a
foreign producer, a corrupted letter, an older greenroom), next to a letter
the runtime made. ``RedisDeadLetterSink.query``, ``get`` and ``redrive``
answer each one: a letter with the fields it could read (``header_ok``
``False`` when its envelope header is unreadable, and then ``redrive``
refuses it as ``"unreadable"``), never an exception; the good letter next to
them reads back whole and redrives.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio.from_thread
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom._errors import ErrorInfo
from greenroom.mailbox import DeadLetter, RedisMailboxes, make_envelope
from greenroom.mailbox._redis_mailbox_entries import letter_fields
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record
from tests._redis_server import redis_prefix, redis_url

BOUNDARY = "redis-dead-letters"


class Charge(gr.Message):
    order: str


def good_letter() -> DeadLetter:
    return DeadLetter(
        envelope=make_envelope("billing", Charge(order="A-1")),
        actor="billing",
        reason="handler_failed",
        error=ErrorInfo(type="ValueError", message="no price list", traceback="Traceback..."),
    )


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# What the runtime's sink writes for a letter, as Redis hands it back.
GOOD = {_as_bytes(k): _as_bytes(v) for k, v in letter_fields(good_letter()).items()}
NAMES = [b"actor", b"reason", b"error_type", b"error", b"at", b"attempts", b"h", b"b", b"id"]
NAMES += [b"traceback"]
ODD_TEXT = [b"\xff\xfe", b"\x1b[2J", b"nan", b"inf", b"-1", b"9" * 5000, b"1e999", b""]


@st.composite
def hostile_letter(draw: st.DrawFn) -> dict[bytes, bytes]:
    """The fields of a dead-letter entry: each kept, dropped, made hostile or odd."""
    fields: dict[bytes, bytes] = {}
    for name in NAMES:
        good = GOOD.get(name, b"1700000000000-0")
        how = draw(st.sampled_from(["keep", "keep", "drop", "hostile", "odd"]))
        if how == "keep":
            fields[name] = good
        elif how == "hostile":
            fields[name] = draw(hostile_bytes(good))
        elif how == "odd":
            fields[name] = draw(st.sampled_from(ODD_TEXT))
    if draw(st.booleans()):
        fields[draw(st.binary(min_size=1, max_size=6))] = draw(st.binary(max_size=40))
    return fields or {b"x": b""}


class Stream:
    def __init__(self, boxes: RedisMailboxes, client: redis.asyncio.Redis) -> None:
        self.boxes = boxes
        self.client = client


@asynccontextmanager
async def opened() -> AsyncIterator[Stream]:
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        async with RedisMailboxes(redis_url(), prefix=redis_prefix()) as boxes:
            yield Stream(boxes, client)
    finally:
        await client.aclose()


async def _round(s: Stream, hostile: list[dict[bytes, bytes]]) -> None:
    sink, dead = s.boxes.dead_letters, s.boxes.dead_key
    ids = [(await s.client.xadd(dead, fields)).decode() for fields in hostile]  # type: ignore[arg-type]
    good_id = (await s.client.xadd(dead, GOOD)).decode()  # type: ignore[arg-type]
    try:
        records = {r.id: r for r in await sink.query()}
        gotten = [await sink.get(letter_id) for letter_id in ids]
        outcomes = await sink.redrive([*ids, good_id])
    except Exception:
        for _ in ids:
            record(BOUNDARY, "escaped")
        raise
    # Unreadable letters of earlier rounds stay in the stream (they are not redriven).
    assert {*ids, good_id} <= set(records), "a letter was not listed"
    for letter_id, got in zip(ids, gotten, strict=True):
        assert got is not None
        assert got.id == letter_id
        assert isinstance(got.letter.actor, str)
        assert isinstance(got.letter.at, float)
        record(BOUNDARY, "accepted" if got.header_ok else "typed")
    for outcome in outcomes[:-1]:
        assert outcome.status in {"redriven", "already_queued", "unreadable"}
        if outcome.status == "unreadable":
            unread = records[outcome.id]
            assert not unread.header_ok or any(p.startswith("actor:") for p in unread.problems)
    good = records[good_id]
    letter = good_letter()
    assert good.header_ok
    assert (good.letter.actor, good.letter.reason) == (letter.actor, letter.reason)
    assert good.letter.error == letter.error
    assert good.letter.envelope.body == {"type": "Charge", "order": "A-1"}
    assert outcomes[-1].status in {"redriven", "already_queued"}
    await sink.purge()


@contextmanager
def portal_opened() -> Iterator[tuple[anyio.from_thread.BlockingPortal, Stream]]:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(opened()) as s,
    ):
        yield portal, s


def test_any_dead_letter_entry_reads_back_as_a_letter_and_redrive_answers_it() -> None:
    with portal_opened() as (portal, s):

        @settings(parent=FUZZ_SETTINGS, max_examples=60)
        @given(st.lists(hostile_letter(), min_size=1, max_size=4))
        def case(hostile: list[dict[bytes, bytes]]) -> None:
            portal.call(_round, s, hostile)

        case()


def test_a_letter_with_a_deep_or_invalid_utf8_body_is_listed_with_its_raw_bytes() -> None:
    deep, bad_text = b"\x91" * 5000 + b"\x01", b"\xa2\xc3\x28"

    async def check(s: Stream) -> None:
        for body in (deep, bad_text):
            letter_id = (await s.client.xadd(s.boxes.dead_key, {**GOOD, b"b": body})).decode()  # type: ignore[dict-item]
            got = await s.boxes.dead_letters.get(letter_id)
            assert got is not None
            assert got.letter.envelope.body == body
            assert got.header_ok
            assert not math.isnan(got.letter.at)

    with portal_opened() as (portal, s):
        portal.call(check, s)
