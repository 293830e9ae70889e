"""A user's program, as mypy --strict and pyright strict must see it.

CI checks this file with both (``uv run mypy --strict tests/typing`` and
``uv run pyright tests/typing``), and ``test_user_side.py`` runs it against
a real runtime, so it stays code that works. ``assert_type`` lines state
what each checker must infer; the lines in :func:`misuse` must be refused,
each marked with the error code the checker gives. Because both checkers
report an ignore that no longer suppresses anything (mypy's
``--warn-unused-ignores``, part of ``--strict``; pyright's
``reportUnnecessaryTypeIgnoreComment``, set in pyproject.toml), a line that
stops failing fails CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

import greenroom as gr


class Order(gr.Message):
    """A plain message, here used as a reply: no class keywords needed."""

    id: str
    total_cents: int


class PlaceOrder(gr.Message, kw_only=True):
    """A command: nothing declares its reply, so ``ask`` of it is ``object``."""

    id: str
    total_cents: int


class GetOrder(gr.Request[Order]):
    """A request: its handler answers with an :class:`Order`."""

    id: str


class CountOrders(gr.Request[int]):
    """A request with a reply that is not a message."""


class Checkout(gr.Request[int]):
    """Asks the checkout actor for an order's total, which it asks the book for."""

    id: str


class Legacy(gr.Message, frozen=True, kw_only=True):
    """The keywords older code spelled out are still accepted."""

    note: str = ""


class Vague(gr.Request):  # type: ignore[type-arg]  # pyright: ignore[reportMissingTypeArgument]
    """Refused: a request names its reply type."""


class OrderBook(gr.Actor):
    """Keeps orders by id."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}

    @gr.handler
    async def place(self, msg: PlaceOrder) -> str:
        self.orders[msg.id] = Order(msg.id, msg.total_cents)
        return msg.id

    @gr.handler
    async def get(self, msg: GetOrder) -> Order:
        return self.orders[msg.id]

    @gr.handler
    async def count(self, msg: CountOrders) -> int:
        return len(self.orders)


class Till(gr.Actor):
    """Answers a checkout by asking the book inside its handler."""

    def __init__(self, book: gr.ActorRef) -> None:
        self.book = book

    @gr.handler
    async def checkout(self, msg: Checkout) -> int:
        order = await self.ctx.ask(self.book, GetOrder(msg.id), timeout=2.0)
        assert_type(order, Order)
        placed = await self.ctx.ask(self.book, PlaceOrder(id=f"{msg.id}-fee", total_cents=50))
        assert_type(placed, object)  # undeclared: narrow it before use
        assert isinstance(placed, str)
        return order.total_cents + 50


@dataclass
class Receipt:
    """What :func:`shop` saw, for the test to check."""

    order: Order
    count: int
    total: int
    pooled: Order
    placed: object


async def shop(rt: gr.Runtime, mailbox: gr.MailboxConfig | None = None) -> Receipt:
    """Place, get and count orders on one book and on a pool of books; check one out."""
    book = await rt.spawn(OrderBook, name="book", mailbox=mailbox)
    assert_type(book, gr.ActorRef)
    await book.tell(PlaceOrder(id="a1", total_cents=1200))
    book.tell_nowait(PlaceOrder(id="a2", total_cents=300))
    placed = await book.ask(PlaceOrder(id="a3", total_cents=5), timeout=2.0)
    assert_type(placed, object)
    order = await book.ask(GetOrder("a1"), timeout=2.0)
    assert_type(order, Order)
    count = await book.ask(CountOrders())
    assert_type(count, int)

    till = await rt.spawn(Till, name="till", args=(book,), mailbox=mailbox)
    total = await till.ask(Checkout("a1"), timeout=5.0)
    assert_type(total, int)

    worker = gr.ChildSpec(actor=OrderBook, mailbox=mailbox or gr.MailboxConfig())
    spec = gr.PoolSpec(id="books", worker=worker, size=3, routing="consistent_hash", key="id")
    pool = await rt.spawn(spec)
    assert_type(pool, gr.PoolRef)
    await pool.tell(PlaceOrder(id="b7", total_cents=42))
    pooled = await pool.ask(GetOrder("b7"), timeout=2.0)
    assert_type(pooled, Order)
    return Receipt(order=order, count=count, total=total, pooled=pooled, placed=placed)


async def misuse(book: gr.ActorRef) -> list[str]:
    """Lines both checkers refuse, run on a ``book`` that has order ``"a1"``.

    Each also goes wrong at run time; the list says how.
    """
    seen: list[str] = []
    try:
        await book.tell(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    except gr.InvalidMessage:
        seen.append("tell(42): InvalidMessage")
    try:
        await book.ask("GetOrder a1")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    except gr.InvalidMessage:
        seen.append("ask(str): InvalidMessage")
    label: str = await book.ask(GetOrder("a1"))  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    seen.append(f"ask(GetOrder) taken as str: {type(label).__name__}")
    cents: int = await book.ask(PlaceOrder(id="a9", total_cents=1))  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    seen.append(f"ask(PlaceOrder) taken as int: {type(cents).__name__}")
    order = await book.ask(GetOrder("a1"))
    try:
        order.total_cents = 0  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    except AttributeError:
        seen.append("Order is frozen: AttributeError")
    return seen


async def main() -> None:
    """The script's entry point: ``python -m tests.typing.user_side``."""
    async with gr.Runtime() as rt:
        print(await shop(rt))
        print(await misuse(rt.ref("book")))


if __name__ == "__main__":
    gr.run(main)
