"""The runtime picks each actor's mailbox kind: per actor, per subtree, or the default."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.mailbox import MailboxConfig, MemoryMailbox


class Ping(gr.Message):
    n: int


class Other(gr.Message):
    pass


class Echo(gr.Actor):
    @gr.handler
    async def ping(self, msg: Ping) -> int:
        return msg.n

    @gr.handler
    async def other(self, msg: Other) -> None: ...


class Recording:
    """A mailbox factory that remembers what it made, and for which message types."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[type, ...]] = {}

    def create(
        self, name: str, config: MailboxConfig, message_types: tuple[type, ...]
    ) -> MemoryMailbox:
        self.made[name] = message_types
        return MemoryMailbox(config.capacity, label=name)


@pytest.mark.anyio
async def test_an_actor_can_ask_for_a_mailbox_kind_by_name() -> None:
    special = Recording()
    async with gr.Runtime(mailboxes={"special": special}) as rt:
        ref = await rt.spawn(Echo, name="a", mailbox=gr.MailboxConfig(kind="special"))
        await rt.spawn(Echo, name="b")
        assert await ref.ask(Ping(n=3)) == 3
    assert list(special.made) == ["a"]
    assert set(special.made["a"]) == {Ping, Other}


@pytest.mark.anyio
async def test_a_subtree_takes_its_supervisors_mailbox_kind_unless_a_child_names_one() -> None:
    special = Recording()
    spec = gr.SupervisorSpec(
        id="sup",
        mailbox_kind="special",
        children=(
            gr.ChildSpec(actor=Echo, id="inherits"),
            gr.ChildSpec(actor=Echo, id="memory", mailbox=gr.MailboxConfig(kind="memory")),
            gr.SupervisorSpec(id="inner", children=(gr.ChildSpec(actor=Echo, id="deep"),)),
        ),
    )
    async with gr.Runtime(mailboxes={"special": special}) as rt:
        await rt.spawn(spec)
    assert sorted(special.made) == ["sup/inherits", "sup/inner/deep"]


@pytest.mark.anyio
async def test_the_runtime_default_kind_applies_to_actors_that_name_none() -> None:
    special = Recording()
    config = gr.RuntimeConfig(default_mailbox="special")
    async with gr.Runtime(config, mailboxes={"special": special}) as rt:
        await rt.spawn(Echo, name="a")
    assert list(special.made) == ["a"]


@pytest.mark.anyio
async def test_an_unknown_mailbox_kind_is_invalid_spec_at_spawn() -> None:
    async with gr.Runtime() as rt:
        with pytest.raises(gr.InvalidSpec, match="durable"):
            await rt.spawn(Echo, mailbox=gr.MailboxConfig(kind="durable"))


def test_an_unknown_default_mailbox_kind_is_invalid_spec() -> None:
    with pytest.raises(gr.InvalidSpec, match="default_mailbox"):
        gr.Runtime(gr.RuntimeConfig(default_mailbox="nope"))
