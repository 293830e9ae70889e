"""``greenroom dlq --redis``: dead letters the runtime makes, through ``boxes.dead_letters``.

An actor on a Redis mailbox whose handler fails past its retry policy is
dead-lettered into ``<prefix>dead``; the CLI lists and shows it with its
reason and error, redrives it, and the fixed program (a flag) handles it
with its envelope id and trace id kept, attempt 1; another letter is purged.
"""

from __future__ import annotations

import json

import anyio
import pytest
import redis

import greenroom as gr
from greenroom.cli import main
from greenroom.mailbox import RedisMailboxes
from tests._redis_server import redis_prefix, redis_url

RETRY = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.0, jitter=0.0))


class Charge(gr.Message):
    order: str
    cents: int


class Billing(gr.Actor):
    def __init__(self, fixed: bool, handled: list[tuple[str, str, int]], done: anyio.Event) -> None:
        self.fixed = fixed
        self.handled = handled
        self.done = done

    @gr.handler
    async def charge(self, msg: Charge) -> None:
        if not self.fixed:
            raise ValueError(f"no price list for {msg.order}")
        envelope = self.ctx.envelope
        assert envelope is not None
        self.handled.append((f"{envelope.id:016x}", f"{envelope.trace_id:016x}", envelope.attempt))
        self.done.set()


def app(prefix: str, *, fixed: bool, order: str = "A-1") -> list[tuple[str, str, int]]:
    """Run billing on a Redis mailbox: broken, ask a charge and fail; fixed, handle one."""
    handled: list[tuple[str, str, int]] = []

    async def run() -> None:
        done = anyio.Event()
        async with (
            RedisMailboxes(redis_url(), prefix=prefix) as boxes,
            gr.Runtime(mailboxes={"redis": boxes}, dead_letters=boxes.dead_letters) as rt,
        ):
            ref = await rt.spawn(
                Billing,
                name="billing",
                args=(fixed, handled, done),
                mailbox=gr.MailboxConfig(kind="redis"),
                retry=RETRY,
            )
            if fixed:
                with anyio.fail_after(5):
                    await done.wait()
            else:
                with pytest.raises(gr.HandlerError):
                    await ref.ask(Charge(order=order, cents=1250), timeout=5)

    anyio.run(run, backend="asyncio")
    return handled


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_handler_failure_is_listed_redriven_to_the_fixed_handler_and_another_purged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, prefix = redis_url(), redis_prefix()
    source = ("--redis", url, "--prefix", prefix)
    assert app(prefix, fixed=False) == []

    status, out, _ = cli(capsys, "dlq", "list", *source, "--json")
    assert status == 0
    [line] = out.splitlines()
    letter = json.loads(line)
    assert (letter["actor"], letter["reason"], letter["attempts"]) == (
        "billing",
        "handler_failed",
        2,
    )
    assert (letter["error_type"], letter["error_message"]) == (
        "ValueError",
        "no price list for A-1",
    )
    assert letter["body"] == {"type": "Charge", "order": "A-1", "cents": 1250}

    status, table, _ = cli(capsys, "dlq", "list", *source, "--error-type", "ValueError")
    assert (status, f"#{letter['id']}" in table) == (0, True)
    assert "handler_failed  attempts=2  ValueError: no price list for A-1" in table

    status, shown, _ = cli(capsys, "dlq", "show", *source, letter["id"])
    assert status == 0
    assert (letter["envelope_id"] in shown, letter["trace_id"] in shown) == (True, True)
    assert "Traceback" in shown
    assert "no price list for A-1" in shown

    status, out, _ = cli(capsys, "dlq", "redrive", *source, letter["id"])
    assert (status, "redriven 1 letter(s)" in out) == (0, True)
    assert cli(capsys, "dlq", "list", *source)[1] == "no dead letters\n"

    # The fixed program handles the redriven message: same ids, attempts reset.
    assert app(prefix, fixed=True) == [(letter["envelope_id"], letter["trace_id"], 1)]

    app(prefix, fixed=False, order="B-2")
    [line] = cli(capsys, "dlq", "list", *source, "--json")[1].splitlines()
    second = json.loads(line)
    assert second["body"]["order"] == "B-2"
    assert cli(capsys, "dlq", "purge", "--yes", *source, second["id"])[1] == "purged 1 letter(s)\n"
    assert cli(capsys, "dlq", "list", *source)[1] == "no dead letters\n"
    client = redis.Redis.from_url(url)
    try:
        assert client.xlen(f"{prefix}{{billing}}:s") == 0
        assert client.xlen(f"{prefix}dead") == 0
    finally:
        client.close()
