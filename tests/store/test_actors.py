"""The store wired to actors: declarations checked at spawn, access in handlers, watches."""

from __future__ import annotations

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.store import (
    ActorStoreView,
    ContractViolation,
    ReadSet,
    Scope,
    StateChanged,
    Store,
    StoreAccess,
    WatchGap,
)
from greenroom.trace import format_id


class Prefs(msgspec.Struct, frozen=True):
    language: str


class SetPrefs(gr.Message):
    user: str
    language: str


class GetPrefs(gr.Message):
    user: str


class Watch(gr.Message):
    user: str


PREFS: Scope[Prefs] = Scope("user_prefs", Prefs, owner="PrefsOwner", readers=["PrefsReader"])


class PrefsOwner(gr.Actor):
    writes = (PREFS,)

    @gr.handler
    async def set(self, msg: SetPrefs) -> tuple[int, str | None]:
        view = self.ctx.service(ActorStoreView)
        record = await view.write(PREFS, msg.user, Prefs(language=msg.language))
        return record.version, record.trace_id


class PrefsReader(gr.Actor):
    reads = (PREFS,)

    def __init__(self, seen: list[StateChanged | WatchGap], got: anyio.Event) -> None:
        self.seen = seen
        self.got = got

    @gr.handler
    async def get(self, msg: GetPrefs) -> str | None:
        read_set = ReadSet()
        record = await self.ctx.service(ActorStoreView).get(PREFS, msg.user, read_set=read_set)
        return None if record is None else record.value.language

    @gr.handler
    async def watch(self, msg: Watch) -> None:
        await self.ctx.service(ActorStoreView).watch(PREFS, key=msg.user)

    @gr.handler
    async def changed(self, msg: StateChanged) -> None:
        self.seen.append(msg)
        self.got.set()

    @gr.handler
    async def gap(self, msg: WatchGap) -> None:
        self.seen.append(msg)

    @gr.handler
    async def set(self, msg: SetPrefs) -> None:
        await self.ctx.service(ActorStoreView).write(PREFS, msg.user, Prefs(language="xx"))


class Sneaky(gr.Actor):
    """Declares nothing, then reads."""

    @gr.handler
    async def get(self, msg: GetPrefs) -> None:
        await self.ctx.service(ActorStoreView).get(PREFS, msg.user)


class ClaimsToWrite(gr.Actor):
    writes = (PREFS,)  # PREFS is owned by PrefsOwner: refused at spawn


@pytest.mark.anyio
async def test_owner_writes_as_itself_with_the_trace_id_of_the_message(store: Store) -> None:
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        owner = await rt.spawn(PrefsOwner, name="prefs")
        version, trace_id = await owner.ask(SetPrefs(user="ada", language="en"))
        assert version == 1
        record = await store.read(PREFS, "ada")
        assert isinstance(record, gr.store.Versioned)
        assert record.updated_by == "prefs"
        assert trace_id is not None
        assert len(trace_id) == len(format_id(1))


@pytest.mark.anyio
async def test_a_declaration_the_scope_does_not_allow_refuses_the_spawn(store: Store) -> None:
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        with pytest.raises(ContractViolation):
            await rt.spawn(ClaimsToWrite)
        assert "claimstowrite" not in {c.rsplit("-", 1)[0] for c in rt._system.cells}


@pytest.mark.anyio
async def test_a_reader_that_writes_is_refused_nothing_written_and_not_retried(
    store: Store,
) -> None:
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        reader = await rt.spawn(PrefsReader, args=([], anyio.Event()))
        with pytest.raises(gr.HandlerError) as info:
            await reader.ask(SetPrefs(user="ada", language="en"))
        assert info.value.error_type == "greenroom.ContractViolation"
        assert info.value.attempts == 1  # a usage error is never retried
        assert await store.read(PREFS, "ada") is None


@pytest.mark.anyio
async def test_an_undeclared_actor_that_reads_is_refused(store: Store) -> None:
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        sneaky = await rt.spawn(Sneaky)
        with pytest.raises(gr.HandlerError, match="ContractViolation"):
            await sneaky.ask(GetPrefs(user="ada"))


@pytest.mark.anyio
async def test_a_watch_delivers_changes_into_the_watchers_mailbox(store: Store) -> None:
    seen: list[StateChanged | WatchGap] = []
    got = anyio.Event()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        owner = await rt.spawn(PrefsOwner, name="prefs")
        reader = await rt.spawn(PrefsReader, name="reader", args=(seen, got))
        await reader.ask(Watch(user="ada"))
        await owner.ask(SetPrefs(user="ada", language="fr"))
        with anyio.fail_after(5):
            await got.wait()
        assert await reader.ask(GetPrefs(user="ada")) == "fr"
    change = seen[0]
    assert isinstance(change, StateChanged)
    assert (change.scope, change.key, change.version, change.updated_by) == (
        "user_prefs",
        "ada",
        1,
        "prefs",
    )


@pytest.mark.anyio
async def test_without_the_extension_ctx_service_is_a_usage_error_naming_the_fix() -> None:
    async with gr.Runtime() as rt:
        sneaky = await rt.spawn(Sneaky)
        with pytest.raises(gr.HandlerError, match="StoreAccess"):
            await sneaky.ask(GetPrefs(user="ada"))
