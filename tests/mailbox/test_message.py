"""Message and Request at run time: frozen, tagged by class name, decodable in a union."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import Message, Request, check_message


class Order(Message):
    id: str
    total_cents: int


class GetOrder(Request[Order]):
    id: str


class CountOrders(Request[int]):
    pass


class Cancel(Message, kw_only=True):
    id: str
    reason: str = ""


Body = GetOrder | CountOrders | Cancel | Order


def test_a_message_subclass_without_keywords_is_frozen_and_tagged_by_its_name() -> None:
    order = Order("a1", 5)
    with pytest.raises(AttributeError):
        order.total_cents = 6  # type: ignore[misc]
    assert Order.__struct_config__.frozen
    assert Order.__struct_config__.tag == "Order"
    bound = check_message(order)  # accepted; a str field is bound by its length
    assert bound is not None
    assert bound >= len(msgspec.msgpack.encode(order))


def test_message_is_the_plain_struct_at_run_time() -> None:
    # The dataclass_transform declaration exists for type checkers only.
    assert not hasattr(Message, "__dataclass_transform__")
    assert Message.__struct_config__.frozen
    assert Message.__struct_config__.tag == "Message"
    assert Message.__mro__[1] is msgspec.Struct


def test_a_request_subclass_is_a_message_tagged_with_its_own_name() -> None:
    assert issubclass(GetOrder, Message)
    assert isinstance(GetOrder("a1"), gr.Request)
    assert GetOrder.__struct_config__.frozen
    assert GetOrder.__struct_config__.tag == "GetOrder"
    assert msgspec.json.encode(GetOrder("a1")) == b'{"type":"GetOrder","id":"a1"}'
    with pytest.raises(AttributeError):
        GetOrder("a1").id = "a2"  # type: ignore[misc]


@given(
    st.one_of(
        st.builds(GetOrder, st.text()),
        st.builds(CountOrders),
        st.builds(Cancel, id=st.text(), reason=st.text()),
        st.builds(Order, st.text(), st.integers(-(2**63), 2**63 - 1)),
    )
)
def test_requests_and_messages_decode_from_one_tagged_union(body: Any) -> None:
    for codec in (msgspec.msgpack, msgspec.json):
        assert codec.decode(codec.encode(body), type=Body) == body


def test_a_request_body_of_the_wrong_shape_is_refused_by_the_union() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `str`, got `int` - at `\$.id`"):
        msgspec.json.decode(b'{"type":"GetOrder","id":7}', type=Body)


class Orders(gr.Actor):
    @gr.handler
    async def get(self, msg: GetOrder) -> Order:
        return Order(msg.id, 1)

    @gr.handler
    async def count(self, msg: CountOrders | Cancel) -> int:
        return 0


class AnyRequest(gr.Actor):
    @gr.handler
    async def any_request(self, msg: Request) -> str:  # type: ignore[type-arg]
        return type(msg).__name__


@pytest.mark.anyio
async def test_a_handler_of_a_request_subclass_is_found_by_its_annotation() -> None:
    with anyio.fail_after(5):
        async with gr.Runtime() as rt:
            ref = await rt.spawn(Orders)
            assert await ref.ask(GetOrder("a1")) == Order("a1", 1)
            assert await ref.ask(CountOrders()) == 0
            assert await ref.ask(Cancel(id="a1")) == 0


@pytest.mark.anyio
async def test_a_handler_of_request_takes_every_request_and_no_other_message() -> None:
    with anyio.fail_after(5):
        async with gr.Runtime() as rt:
            ref = await rt.spawn(AnyRequest)
            assert await ref.ask(GetOrder("a1")) == "GetOrder"
            assert await ref.ask(CountOrders()) == "CountOrders"
            with pytest.raises(gr.UnknownMessage):
                await ref.ask(Cancel(id="a1"))
