"""Grants go to the principal the runtime bound at spawn, not to a name or qualname."""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from greenroom.tools import PURE, ToolAccess, ToolBox, ToolError, ToolRegistry, tool
from tests.tools._inputs import Done, Flat

pytestmark = pytest.mark.anyio


@tool(effect=PURE)
async def note(input: Flat) -> Done:
    """Note a query."""
    return Done()


ARGS = '{"query": "q", "limit": 1, "exact": true}'


class Use(gr.Message):
    pass


class Spawn(gr.Message):
    route: str
    name: str
    actor: str  # a key of ACTORS


class Clerk(gr.Actor):
    """Granted by class; calls the tool and says how it went."""

    @gr.handler
    async def use(self, msg: Use) -> str:
        try:
            await self.ctx.service(ToolBox).call("note", ARGS)
        except ToolError as exc:
            return type(exc).__name__
        return "called"


class Caller(Clerk):
    """Holds no grant by class: a subclass of Clerk is not Clerk."""


def _class_named_clerk() -> type[gr.Actor]:
    class Clerk(Caller):  # another class of the same name
        pass

    Clerk.__qualname__ = "Clerk"
    Clerk.__module__ = __name__
    return Clerk


ACTORS: dict[str, type[gr.Actor]] = {
    "caller": Caller,
    "clerk": Clerk,
    "forged clerk": _class_named_clerk(),
}
ROUTES = ("ctx.spawn", "ctx.runtime.spawn", "ctx.parent.start_child", "task group")


class Spawner(gr.Actor):
    """An actor with no grants that spawns actors under names it picks."""

    @gr.handler
    async def spawn(self, msg: Spawn) -> str:
        spec = gr.ChildSpec(actor=ACTORS[msg.actor], id=msg.name)
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
        return "spawned"


def _access() -> ToolAccess:
    # Built in this module: "Clerk" is the class above, "auditor" a name.
    return ToolAccess(ToolRegistry([note]), grants={"Clerk": ["note"], "auditor": ["note"]})


async def test_granted_actors_still_call_by_class_and_by_a_name_the_application_gave() -> None:
    async with gr.Runtime(extensions=[_access()]) as rt:
        clerk = await rt.spawn(Clerk, name="front-desk")
        auditor = await rt.spawn(Caller, name="auditor")
        assert await clerk.ask(Use()) == "called"
        assert await auditor.ask(Use()) == "called"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_class_an_actor_spawns_under_a_privileged_name_gets_none_of_its_grants(
    route: str,
) -> None:
    async with gr.Runtime(extensions=[_access()]) as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        assert await spawner.ask(Spawn(route=route, name="auditor", actor="caller")) == "spawned"
        assert await rt.ref("auditor").ask(Use()) == "ToolNotGranted"


async def test_a_granted_class_keeps_its_grants_when_an_actor_spawns_it() -> None:
    async with gr.Runtime(extensions=[_access()]) as rt:
        spawner = await rt.spawn(Spawner, name="spawner")
        await spawner.ask(Spawn(route="ctx.spawn", name="desk-7", actor="clerk"))
        assert await rt.ref("desk-7").ask(Use()) == "called"


@pytest.mark.parametrize("actor", ["forged clerk", "caller"], ids=["same qualname", "subclass"])
async def test_a_class_with_the_granted_qualname_gets_none_of_its_grants(
    actor: str, logged: list[dict[str, object]]
) -> None:
    async with gr.Runtime(extensions=[_access()]) as rt:
        ref = await rt.spawn(ACTORS[actor], name="desk")
        assert await ref.ask(Use()) == "ToolNotGranted"
    if actor == "forged clerk":  # said, so that a misconfiguration is found
        [warning] = [r for r in logged if r["event"] == "tools.grant_not_applied"][:1]
        assert (warning["actor"], warning["key"]) == ("desk", "Clerk")


async def test_a_grant_keyed_by_the_class_object_goes_to_that_class_only() -> None:
    access = ToolAccess(ToolRegistry([note]), grants={Clerk: ["note"]})
    async with gr.Runtime(extensions=[access]) as rt:
        assert await (await rt.spawn(Clerk, name="by-class")).ask(Use()) == "called"
        forged = await rt.spawn(ACTORS["forged clerk"], name="Clerk")
        assert await forged.ask(Use()) == "ToolNotGranted"
