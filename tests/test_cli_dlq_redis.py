"""``greenroom dlq --redis URL --prefix P``: the dead-letter stream of RedisMailboxes, end to end.

Letters are made the way they are in production: a producer that knows a
message type the consumer's running version does not puts it, the
consumer's pump cannot decode it and moves it to ``<prefix>dead``. The
commands run through the CLI's ``main``; the "fixed" consumer then reads
the redriven message.
"""

from __future__ import annotations

import json

import anyio
import pytest
import redis

import greenroom as gr
from greenroom.cli import main
from greenroom.mailbox import RedisMailbox, RedisMailboxes, make_envelope
from greenroom.mailbox._redis_mailbox_entries import encode_header
from greenroom.mailbox._sqlite_rows import encode_body
from tests._redis_server import free_port, redis_prefix, redis_url


class Charge(gr.Message):
    order: str
    cents: int


class Refund(gr.Message):
    order: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def put_raw(prefix: str, fields: dict[str, bytes]) -> None:
    """An entry in billing's stream, as another producer (or corruption) left it."""
    client = redis.Redis.from_url(redis_url())
    try:
        client.xadd(f"{prefix}{{billing}}:s", fields)  # type: ignore[arg-type]
    finally:
        client.close()


async def _take(box: RedisMailbox) -> gr.Envelope:
    with anyio.fail_after(5):
        while True:
            arrived = anyio.Event()
            box.set_listener(arrived.set)
            got = box.get_nowait()
            if got is not None:
                return got
            await arrived.wait()


def consume(prefix: str, types: tuple[type, ...], expect: int = 0) -> list[gr.Envelope]:
    """Run billing's mailbox: take and ack ``expect`` messages; the undecodable go dead."""

    async def run() -> list[gr.Envelope]:
        async with RedisMailboxes(redis_url(), prefix=prefix) as boxes:
            box = boxes.create("billing", gr.MailboxConfig(capacity=16), types)
            got = [await _take(box) for _ in range(expect)]
            for envelope in got:
                box.ack(envelope)
            await boxes.flush()  # the stream read: undecodable entries queued as letters
            await boxes.flush()  # and written
            assert box.get_nowait() is None
            return got

    return anyio.run(run, backend="asyncio")


def test_a_redis_dead_letter_is_listed_shown_and_redriven_to_the_fixed_consumer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, prefix = redis_url(), redis_prefix()
    source = ("--redis", url, "--prefix", prefix)
    refund = make_envelope("billing", Refund(order="A-1"))
    put_raw(prefix, {"h": encode_header(refund), "b": encode_body(refund.body)})
    assert consume(prefix, (Charge,)) == []  # this version knows no Refund

    status, out, _ = cli(capsys, "dlq", "list", *source, "--json")
    assert status == 0
    [line] = out.splitlines()
    letter = json.loads(line)
    assert (letter["actor"], letter["reason"]) == ("billing", "unknown_message")
    assert letter["error_type"] == "greenroom.UnknownMessage"
    assert (letter["envelope_id"], letter["trace_id"]) == (
        f"{refund.id:016x}",
        f"{refund.trace_id:016x}",
    )
    assert letter["body"] == {"type": "Refund", "order": "A-1"}

    status, table, _ = cli(capsys, "dlq", "list", *source, "--actor", "billing", "--since", "1h")
    assert (status, f"#{letter['id']}" in table, "1 letter(s)" in table) == (0, True, True)
    assert cli(capsys, "dlq", "list", *source, "--actor", "nobody")[1] == "no dead letters\n"

    status, shown, _ = cli(capsys, "dlq", "show", *source, letter["id"])
    assert status == 0
    assert letter["envelope_id"] in shown
    assert letter["trace_id"] in shown
    assert "error_type: greenroom.UnknownMessage" in shown

    status, out, _ = cli(capsys, "dlq", "redrive", *source, letter["id"])
    assert status == 0
    assert f"envelope {letter['envelope_id']} to billing" in out
    assert "redriven 1 letter(s)" in out
    assert cli(capsys, "dlq", "list", *source)[1] == "no dead letters\n"

    # The fixed consumer gets the same envelope, attempt 1, and leaves the stream empty.
    [got] = consume(prefix, (Charge, Refund), expect=1)
    assert (got.id, got.trace_id, got.attempt, got.body) == (
        refund.id,
        refund.trace_id,
        1,
        Refund(order="A-1"),
    )
    client = redis.Redis.from_url(url)
    try:
        assert client.xlen(f"{prefix}{{billing}}:s") == 0
        assert client.xlen(f"{prefix}dead") == 0
    finally:
        client.close()


def test_redis_letters_are_purged_by_id_or_filter_and_bad_input_is_told(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, prefix = redis_url(), redis_prefix()
    source = ("--redis", url, "--prefix", prefix)
    put_raw(prefix, {"h": b"\xc1garbage", "b": b"x"})  # not even a header
    for order in ("B-1", "B-2"):
        refund = make_envelope("billing", Refund(order=order))
        put_raw(prefix, {"h": encode_header(refund), "b": encode_body(refund.body)})
    consume(prefix, (Charge,))
    ids = [
        json.loads(line)["id"]
        for line in cli(capsys, "dlq", "list", *source, "--json")[1].split("\n")
        if line
    ]
    assert len(ids) == 3
    unreadable = ids[0]

    status, out, _ = cli(capsys, "dlq", "redrive", *source, unreadable)
    assert (status, "cannot be redriven" in out, "redriven 0 letter(s)" in out) == (0, True, True)
    assert cli(capsys, "dlq", "purge", "--yes", *source, "--all", "--actor", "other")[1] == (
        "purged 0 letter(s)\n"
    )
    assert cli(capsys, "dlq", "purge", "--yes", *source, unreadable)[1] == "purged 1 letter(s)\n"
    status, _, err = cli(capsys, "dlq", "purge", "--yes", *source, unreadable, ids[1])
    assert (status, err.strip()) == (
        1,
        f"greenroom: error: no dead letter #{unreadable} in {url} (prefix {prefix})",
    )
    assert cli(capsys, "dlq", "purge", "--yes", *source, "--all")[1] == "purged 1 letter(s)\n"
    assert cli(capsys, "dlq", "list", *source)[1] == "no dead letters\n"

    status, _, err = cli(capsys, "dlq", "show", *source, "1-0")
    assert (status, err.strip()) == (
        1,
        f"greenroom: error: no dead letter #1-0 in {url} (prefix {prefix})",
    )
    status, _, err = cli(capsys, "dlq", "show", *source, "42")
    assert status == 2
    assert "stream entry id, such as 1700000000000-0" in err
    status, _, err = cli(capsys, "dlq", "list", "--db", "x.db", "--prefix", prefix)
    assert (status, "--prefix goes with --redis" in err) == (2, True)
    status, _, err = cli(capsys, "dlq", "list", "--redis", f"redis://127.0.0.1:{free_port()}/0")
    assert status == 3
    assert err.startswith("greenroom: error: the mailbox backend redis (prefix greenroom:) failed")
    status, _, err = cli(capsys, "dlq", "list", "--redis", "http://nowhere")
    assert (status, err.startswith("greenroom: error: cannot use the Redis URL")) == (2, True)
