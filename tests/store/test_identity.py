"""Contracts that cannot be borrowed: no raw store on a view, principals bound at spawn."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.actors import Principal
from greenroom.store import (
    ActorStoreView,
    ContractViolation,
    MemoryStore,
    RedisStore,
    Scope,
    SqliteStore,
    StoreAccess,
    Versioned,
)

pytestmark = pytest.mark.anyio


class Doc(msgspec.Struct, frozen=True):
    text: str


# Declared before the classes: "Owner" and "Reader" are looked up in this
# module when actors are spawned; "journal-keeper" is no class here, so a name.
DOCS: Scope[Doc] = Scope("docs", Doc, owner="Owner", readers=["Reader"])
JOURNAL: Scope[Doc] = Scope("journal", Doc, owner="journal-keeper")


class Write(gr.Message):
    key: str
    text: str


class Attack(gr.Message):
    key: str


class Who(gr.Message):
    pass


class Crash(gr.Message):
    pass


class Owner(gr.Actor):
    writes = (DOCS,)

    @gr.handler
    async def write(self, msg: Write) -> tuple[int, str]:
        record = await self.ctx.service(ActorStoreView).write(DOCS, msg.key, Doc(msg.text))
        return record.version, record.updated_by

    @gr.handler
    async def forge(self, msg: Attack) -> str:
        view: Any = self.ctx.service(ActorStoreView)
        try:
            await view.write(DOCS, msg.key, Doc("forged"), writer="someone-else")
        except TypeError:
            return "TypeError"
        return "written"


def _stores_reachable_from(root: object) -> list[str]:
    """The public attribute paths from ``root`` (two levels deep) that hold a Store."""
    found: list[str] = []
    frontier: list[tuple[str, object]] = [("", root)]
    for _ in range(2):
        reached: list[tuple[str, object]] = []
        for path, obj in frontier:
            for name in dir(obj):
                if name.startswith("_"):
                    continue
                try:
                    value = getattr(obj, name)
                except Exception:  # a property that needs a handler, say
                    continue
                if isinstance(value, MemoryStore | SqliteStore | RedisStore):
                    found.append(f"{path}.{name}")
                reached.append((f"{path}.{name}", value))
                if isinstance(value, list | tuple):
                    reached.extend((f"{path}.{name}[{i}]", v) for i, v in enumerate(value))
        frontier = reached
    return found


class Reader(gr.Actor):
    """Reads DOCS; tries every route of its view (and its context) to write it."""

    reads = (DOCS,)

    @gr.handler
    async def attack(self, msg: Attack) -> dict[str, str]:
        view: Any = self.ctx.service(ActorStoreView)
        outcomes: dict[str, str] = {}

        async def attempt(route: str, fn: Any) -> None:
            try:
                result = fn()
                if hasattr(result, "__await__"):
                    await result
            except (ContractViolation, AttributeError, TypeError) as exc:
                outcomes[route] = type(exc).__name__
            else:
                outcomes[route] = "allowed"

        doc = Doc("overwritten")
        await attempt("write", lambda: view.write(DOCS, msg.key, doc))
        await attempt("write, expected", lambda: view.write(DOCS, msg.key, doc, expected=1))
        await attempt("delete", lambda: view.delete(DOCS, msg.key))
        await attempt("view.store", lambda: view.store.write(DOCS, msg.key, doc, writer="w"))
        await attempt("view._store", lambda: view._store.write(DOCS, msg.key, doc, writer="w"))
        await attempt("vars(view)", lambda: vars(view))
        await attempt("view.__dict__", lambda: view.__dict__)
        await attempt("access.store", lambda: self.ctx.runtime.extensions[0].store)
        await attempt("access._store", lambda: self.ctx.runtime.extensions[0]._store)
        outcomes["stores reachable"] = ", ".join(
            _stores_reachable_from(view) + _stores_reachable_from(self.ctx.runtime.extensions[0])
        )
        return outcomes


async def test_a_reader_cannot_write_through_any_route_of_its_view() -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        owner = await rt.spawn(Owner, name="owner")
        assert await owner.ask(Write(key="a", text="original")) == (1, "owner")
        reader = await rt.spawn(Reader, name="reader")
        outcomes = await reader.ask(Attack(key="a"))
    assert outcomes == {
        "write": "ContractViolation",
        "write, expected": "ContractViolation",
        "delete": "ContractViolation",
        "view.store": "AttributeError",
        "view._store": "AttributeError",
        "vars(view)": "TypeError",
        "view.__dict__": "AttributeError",
        "access.store": "AttributeError",
        "access._store": "AttributeError",
        "stores reachable": "",
    }
    record = await store.read(DOCS, "a")
    assert isinstance(record, Versioned)
    assert (record.value, record.version, record.updated_by) == (Doc("original"), 1, "owner")


async def test_updated_by_is_the_bound_principal_and_cannot_be_named_by_the_writer() -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        owner = await rt.spawn(Owner, name="owner")
        assert await owner.ask(Attack(key="a")) == "TypeError"
        assert await owner.ask(Write(key="a", text="mine")) == (1, "owner")
    record = await store.read(DOCS, "a")
    assert isinstance(record, Versioned)
    assert record.updated_by == "owner"


# -- principals bound at spawn -------------------------------------------------


class Keeper(gr.Actor):
    """Owns JOURNAL by name: the application spawns it as "journal-keeper"."""

    writes = (JOURNAL,)

    @gr.handler
    async def write(self, msg: Write) -> str:
        record = await self.ctx.service(ActorStoreView).write(JOURNAL, msg.key, Doc(msg.text))
        return record.updated_by

    @gr.handler
    async def who(self, msg: Who) -> Principal:
        return self.ctx.principal


class Impostor(gr.Actor):
    """Claims the journal: it would be its owner if its name were enough."""

    writes = (JOURNAL,)


class Scribe(gr.Actor):
    """Declares nothing: tells who it is, and fails on demand."""

    @gr.handler
    async def who(self, msg: Who) -> Principal:
        return self.ctx.principal

    @gr.handler
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash on purpose")


class Spawn(gr.Message):
    route: str
    name: str
    actor: str  # a key of ACTORS
    restart: gr.actors.Restart = "temporary"


ACTORS: dict[str, type[gr.Actor]] = {
    "impostor": Impostor,
    "keeper": Keeper,
    "owner": Owner,
    "scribe": Scribe,
}
ROUTES = ("ctx.spawn", "ctx.runtime.spawn", "ctx.parent.start_child", "task group")


class Spawner(gr.Actor):
    """An actor with no rights of its own that spawns actors under names it picks."""

    @gr.handler
    async def spawn(self, msg: Spawn) -> str:
        spec = gr.ChildSpec(actor=ACTORS[msg.actor], id=msg.name, restart=msg.restart)
        try:
            if msg.route == "ctx.spawn":
                await self.ctx.spawn(spec)
            elif msg.route == "ctx.runtime.spawn":
                await self.ctx.runtime.spawn(spec)
            elif msg.route == "ctx.parent.start_child":
                parent = self.ctx.parent
                assert isinstance(parent, gr.SupervisorRef)
                await parent.start_child(spec)
            else:  # a task this actor starts is still this actor's code
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self.ctx.runtime.spawn, spec)
        except ExceptionGroup as group:  # from the task group
            return f"{type(group.exceptions[0]).__name__}: {group.exceptions[0]}"
        except ContractViolation as exc:
            return f"{type(exc).__name__}: {exc}"
        return "spawned"


async def test_the_application_gives_a_name_and_its_rights() -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        keeper = await rt.spawn(Keeper, name="journal-keeper")
        assert await keeper.ask(Write(key="day-1", text="rain")) == "journal-keeper"
        principal = await keeper.ask(Who())
    assert (principal.name, principal.actor_type, principal.named) == (
        "journal-keeper",
        Keeper,
        True,
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_a_class_an_actor_spawns_under_a_privileged_name_gets_no_write_right(
    route: str,
) -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        answer = await spawner.ask(Spawn(route=route, name="journal-keeper", actor="impostor"))
        assert answer.startswith("ContractViolation: actor 'journal-keeper'")
        with pytest.raises(gr.ActorStopped):
            rt.ref("journal-keeper")
    assert await store.read(JOURNAL, "day-1") is None


async def test_the_refusal_says_why_the_name_did_not_count() -> None:
    async with gr.Runtime(extensions=[StoreAccess(MemoryStore())]) as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        answer = await spawner.ask(Spawn(route="ctx.spawn", name="journal-keeper", actor="keeper"))
    assert "only its owner 'journal-keeper' may write it" in answer
    assert "an actor (not the application) spawned 'journal-keeper'" in answer


async def test_a_restarted_actor_keeps_the_principal_it_was_spawned_with() -> None:
    async with gr.Runtime() as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        spawn = Spawn(route="ctx.parent.start_child", name="s", actor="scribe", restart="permanent")
        assert await spawner.ask(spawn) == "spawned"
        scribe = rt.ref("s")
        before = await scribe.ask(Who())
        with pytest.raises(gr.HandlerError):
            await scribe.ask(Crash(), timeout=5)
        after = await scribe.ask(Who(), timeout=5)
    assert before == after
    assert (after.name, after.actor_type, after.named) == ("s", Scribe, False)


async def test_the_owning_class_still_writes_when_an_actor_spawns_it() -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        assert await spawner.ask(Spawn(route="ctx.spawn", name="scribe", actor="owner")) == (
            "spawned"
        )
        assert await rt.ref("scribe").ask(Write(key="k", text="v")) == (1, "scribe")


def _class_named_owner() -> type[gr.Actor]:
    class Owner(gr.Actor):  # the point: another class of the same name
        writes = (DOCS,)

    Owner.__qualname__ = "Owner"
    Owner.__module__ = __name__
    return Owner


class OwnerSubclass(Owner):
    """Inherits the declaration, not the ownership."""


@pytest.mark.parametrize(
    "actor", [_class_named_owner(), OwnerSubclass], ids=["same qualname", "subclass"]
)
async def test_a_class_with_the_owners_qualname_is_not_the_owner(actor: type[gr.Actor]) -> None:
    store = MemoryStore()
    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt:
        with pytest.raises(ContractViolation, match="only its owner 'Owner' may write"):
            await rt.spawn(actor, name="owner")
        await (await rt.spawn(Owner, name="real")).ask(Write(key="k", text="v"))
    record = await store.read(DOCS, "k")
    assert isinstance(record, Versioned)
    assert record.updated_by == "real"


class TwinOwner(gr.Actor):
    """Declares a scope of its own under the name of DOCS, naming itself the owner."""

    writes = (Scope("docs", Doc, owner="TwinOwner"),)


async def test_a_twin_scope_of_a_known_name_is_refused_at_spawn() -> None:
    async with gr.Runtime(extensions=[StoreAccess(MemoryStore())]) as rt:
        await rt.spawn(Owner, name="owner")
        with pytest.raises(ContractViolation, match="this store's scope of that name"):
            await rt.spawn(TwinOwner)


async def test_scopes_given_up_front_refuse_a_twin_that_comes_first() -> None:
    async with gr.Runtime(extensions=[StoreAccess(MemoryStore(), scopes=[DOCS])]) as rt:
        with pytest.raises(ContractViolation, match="this store's scope of that name"):
            await rt.spawn(TwinOwner)
        await rt.spawn(Owner, name="owner")
