"""A supervised pool whose worker crashes, is restarted, and loses nothing.

Run it with ``uv run examples/supervision.py``. It starts a supervisor with
a pool of three order workers (routed by consistent hash of the customer, so
one customer's orders stay in order on one worker) and an auditor. One order
makes its worker crash: the supervisor restarts that worker, retries the
order, and the worker's later messages are still handled in order. A
poisoned order fails on every attempt and ends as a dead letter, which the
caller sees as a typed error.
"""

from __future__ import annotations

import greenroom as gr


class Order(gr.Message):
    customer: str
    order_id: int
    poison: bool = False


class Flaky(gr.Message):
    """Fails the first time a worker instance sees it, then succeeds."""

    customer: str
    order_id: int


class Report(gr.Message):
    pass


class Audit(gr.Message):
    line: str


failed_once: set[int] = set()


class Auditor(gr.Actor):
    def __init__(self) -> None:
        self.lines: list[str] = []

    @gr.handler
    async def audit(self, msg: Audit) -> None:
        self.lines.append(msg.line)
        print(f"  audit | {msg.line}")

    @gr.handler
    async def report(self, msg: Report) -> list[str]:
        return list(self.lines)


class OrderWorker(gr.Actor):
    async def on_start(self) -> None:
        print(f"  start | {self.ctx.name}")
        return

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        print(f"restart | {self.ctx.name} after {error.type}: {error.message}")

    async def _audit(self, line: str) -> None:
        await self.ctx.runtime.ref("shop/auditor").tell(Audit(line=line))

    @gr.handler
    async def order(self, msg: Order) -> str:
        if msg.poison:
            raise ValueError(f"order {msg.order_id} is malformed")
        line = f"{self.ctx.name} handled order {msg.order_id} for {msg.customer}"
        await self._audit(line)
        return line

    @gr.handler
    async def flaky(self, msg: Flaky) -> str:
        envelope = self.ctx.envelope
        assert envelope is not None
        if msg.order_id not in failed_once:
            failed_once.add(msg.order_id)
            raise ConnectionError(f"payment gateway dropped order {msg.order_id}")
        line = (
            f"{self.ctx.name} handled order {msg.order_id} for {msg.customer} "
            f"on attempt {envelope.attempt}"
        )
        await self._audit(line)
        return line


SHOP = gr.SupervisorSpec(
    id="shop",
    strategy="one_for_one",
    max_restarts=5,
    within=10.0,
    children=(
        gr.ChildSpec(actor=Auditor, id="auditor"),
        gr.PoolSpec(
            id="orders",
            size=3,
            routing="consistent_hash",
            key="customer",
            worker=gr.ChildSpec(
                actor=OrderWorker,
                retry=gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.01)),
            ),
        ),
    ),
)


async def main() -> None:
    print("== starting the shop: an auditor and a pool of 3 order workers")
    async with gr.Runtime() as rt:
        shop = await rt.spawn(SHOP)
        orders = rt.ref("shop/orders")

        print("== ada's orders: the second one crashes its worker once")
        await orders.tell(Order(customer="ada", order_id=1))
        await orders.tell(Flaky(customer="ada", order_id=2))
        await orders.tell(Order(customer="ada", order_id=3))
        print(await orders.ask(Order(customer="ada", order_id=4)))

        print("== a poisoned order fails on every attempt")
        try:
            await orders.ask(Order(customer="bob", order_id=5, poison=True))
        except gr.HandlerError as exc:
            print(f"  error | {type(exc).__name__}: {exc}")
        print(await orders.ask(Order(customer="bob", order_id=6)))

        print("== what the supervisor saw")
        for child in await shop.which_children():
            print(f"  child | {child.name}: {child.status}")
        pool = rt.ref("shop/orders")
        assert isinstance(pool, gr.PoolRef)
        for worker in await pool.which_children():
            print(f"  child | {worker.name}: {worker.status}, {worker.failures} failure(s)")
        for letter in rt.dead_letters.list():
            print(
                f"   dead | {letter.actor}: {type(letter.envelope.body).__name__} after "
                f"{letter.envelope.attempt} attempts: {letter.error.type}: {letter.error.message}"
            )
        lines = await rt.ref("shop/auditor").ask(Report())
        ada = [line for line in lines if "for ada" in line]
        in_order = [int(line.split("order ")[1].split()[0]) for line in ada] == [1, 2, 3, 4]
        print(f"== ada's orders handled in order across the restart: {in_order}")
    print("== shut down: every actor stopped, children before parents")


if __name__ == "__main__":
    gr.run(main)
