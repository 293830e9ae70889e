"""Fuzz: ``BodyDecoder.decode`` turns any bytes into a message or a typed poison."""

from __future__ import annotations

import msgspec
from hypothesis import given

from greenroom import Message
from greenroom.mailbox._sqlite_rows import BodyDecoder, Poison
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record


class Order(Message):
    item: str
    qty: int


class Cancel(Message):
    order: int


GOOD = msgspec.msgpack.encode(Order(item="tea", qty=2))
DECODER = BodyDecoder((Order, Cancel), limit=1 << 20)


@FUZZ_SETTINGS
@given(hostile_bytes(GOOD))
def test_decode_never_raises(data: bytes) -> None:
    try:
        result = DECODER.decode("shop", data)
    except Exception:
        record("body-decoder", "escaped")
        raise
    if isinstance(result, Poison):
        record("body-decoder", "typed")
        assert result.error.type.startswith("greenroom.")
        assert result.reason in {"invalid_message", "unknown_message", "too_large"}
    else:
        record("body-decoder", "accepted")
        assert isinstance(result, Order | Cancel)


def test_decode_names_each_hostile_shape() -> None:
    deep = b"\x91" * 5000 + b"\x01"
    bad_utf8 = b"\x82\xa4type\xa5Order\xa4item\xa1\xff"
    unhashable_tag = b"\x81\xa4type\x92\x01\x02"
    for data in (deep, bad_utf8, unhashable_tag):
        poison = DECODER.decode("shop", data)
        assert isinstance(poison, Poison), data[:20]
