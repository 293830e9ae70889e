"""ContextBuilder reads the store under the actor's contract and records every version read."""

from __future__ import annotations

import msgspec
import pytest

import greenroom as gr
from greenroom.agent import BuiltContext, ContextBuilder, Conversation, Fact
from greenroom.decide import ChatMessage
from tests.agent._kit import PREFS, Prefs

pytestmark = pytest.mark.anyio


class Secret(msgspec.Struct, frozen=True, kw_only=True):
    code: str


SECRETS = gr.Scope("test.secrets", Secret, owner="Vault")


class Build(gr.Message):
    user: str


class Builder(gr.Actor):
    """Builds a context with its own store view, as a worker does."""

    reads = (PREFS,)

    def __init__(self, builder: ContextBuilder) -> None:
        self.builder = builder

    @gr.handler
    async def build(self, msg: Build) -> BuiltContext:
        conversation = Conversation(id="c1", user=msg.user, messages=(ChatMessage.user("hi"),))
        view = self.ctx.service(gr.ActorStoreView)
        return await self.builder.build(view, conversation)


BUILDER = ContextBuilder([Fact("prefs", PREFS, key=lambda c: c.user)], system="be brief")


async def _build(builder: ContextBuilder, store: gr.MemoryStore, user: str) -> BuiltContext:
    async with gr.Runtime(extensions=[gr.StoreAccess(store)]) as rt:
        ref = await rt.spawn(
            Builder, name="builder", args=(builder,), retry=gr.RetryPolicy(max_attempts=1)
        )
        built = await ref.ask(Build(user=user))
    assert isinstance(built, BuiltContext)
    return built


async def test_the_context_holds_the_facts_read_and_the_read_set_their_versions() -> None:
    store = gr.MemoryStore()
    await store.write(PREFS, "ada", Prefs(language="en"))
    await store.write(PREFS, "ada", Prefs(language="fr"))
    built = await _build(BUILDER, store, "ada")
    assert built.context.facts == {"prefs": Prefs(language="fr")}
    assert [(e.scope, e.key, e.version) for e in built.read_set] == [("test.prefs", "ada", 2)]
    assert [m.role for m in built.context.messages] == ["system", "user"]


async def test_an_absent_fact_is_none_and_its_absence_is_in_the_read_set() -> None:
    store = gr.MemoryStore()
    built = await _build(BUILDER, store, "grace")
    assert built.context.facts == {"prefs": None}
    assert [(e.key, e.version) for e in built.read_set] == [("grace", 0)]
    await store.write(PREFS, "grace", Prefs())
    assert list(await store.check_fresh(built.read_set)) == list(built.read_set)  # now stale


async def test_a_fact_outside_the_actors_contract_is_refused() -> None:
    builder = ContextBuilder([Fact("secret", SECRETS, key="k")])
    with pytest.raises(gr.HandlerError) as caught:
        await _build(builder, gr.MemoryStore(), "ada")
    assert caught.value.error_type.endswith("ContractViolation")


def test_the_builder_names_the_scopes_a_worker_must_declare() -> None:
    builder = ContextBuilder([Fact("a", PREFS, key="x"), Fact("b", PREFS, key="y")])
    assert builder.scopes == (PREFS,)


def test_two_facts_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        ContextBuilder([Fact("a", PREFS, key="x"), Fact("a", PREFS, key="y")])
