"""The typed user-side example is real code: it runs on memory and durable mailboxes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes
from tests.typing.user_side import Order, misuse, shop

pytestmark = pytest.mark.anyio

# Messages shop() sends through the mailboxes of the book, the till and the pool.
SENT = 10


async def test_the_user_side_example_runs_on_memory_mailboxes() -> None:
    with anyio.fail_after(10):
        async with gr.Runtime() as rt:
            receipt = await shop(rt)
    assert receipt.order == Order("a1", 1200)
    assert receipt.count == 3
    assert receipt.total == 1250
    assert receipt.pooled == Order("b7", 42)
    assert receipt.placed == "a3"


async def test_request_bodies_cross_durable_mailboxes_to_their_handlers(tmp_path: Path) -> None:
    # A durable mailbox encodes every body and decodes it as the tagged union
    # of its actor's handler types, so Request[R] subclasses must decode there.
    with anyio.fail_after(20):
        async with (
            SqliteMailboxes(tmp_path / "m.db") as boxes,
            gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
        ):
            receipt = await shop(rt, gr.MailboxConfig(kind="durable"))
    rows = boxes.statistics().rows  # closed: its last group commit is in
    assert receipt.order == Order("a1", 1200)
    assert receipt.total == 1250
    assert receipt.pooled == Order("b7", 42)
    assert rows >= 2 * SENT  # each message was written to sqlite, then acked


async def test_the_lines_checkers_refuse_also_go_wrong_at_run_time() -> None:
    with anyio.fail_after(10):
        async with gr.Runtime() as rt:
            await shop(rt)
            seen = await misuse(rt.ref("book"))
    assert seen == [
        "tell(42): InvalidMessage",
        "ask(str): InvalidMessage",
        "ask(GetOrder) taken as str: Order",
        "ask(PlaceOrder) taken as int: str",
        "Order is frozen: AttributeError",
    ]
