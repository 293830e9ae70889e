"""Contract checks: declarations at spawn, and every access before any I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec
import pytest
from loguru import logger

from greenroom._errors import UsageError
from greenroom.actors import Actor
from greenroom.store import (
    ContractViolation,
    Principal,
    ReadEntry,
    ReadSet,
    Scope,
    Store,
    StoreView,
    Versioned,
    check_declaration,
)
from tests.store.conftest import COUNTERS, PREFS, Prefs, Reader, Writer

pytestmark = pytest.mark.anyio


class Stranger(Actor):
    """An actor class no scope names."""


WRITER = Principal(name="writer-1", actor_type=Writer)
READER = Principal(name="reader-1", actor_type=Reader)
AUDITOR = Principal(name="auditor")
STRANGER = Principal(name="stranger", actor_type=Stranger)


@pytest.fixture
def logged() -> Iterator[list[dict[str, object]]]:
    """The extra fields of every greenroom log record while the test runs."""
    records: list[dict[str, object]] = []
    logger.enable("greenroom")
    sink_id = logger.add(lambda m: records.append(dict(m.record["extra"])), level="WARNING")
    yield records
    logger.remove(sink_id)
    logger.disable("greenroom")


def test_owner_may_declare_writes_and_readers_may_declare_reads() -> None:
    check_declaration(WRITER, reads=[PREFS], writes=[PREFS])
    check_declaration(READER, reads=[PREFS], writes=[])
    check_declaration(AUDITOR, reads=[PREFS], writes=[])


def test_principal_matches_a_scope_entry_by_name_or_by_class() -> None:
    by_name = Scope("notes", str, owner="writer-1", readers=["Reader"])
    assert by_name.owned_by(WRITER)
    assert not by_name.owned_by(READER)
    assert by_name.readable_by(READER)
    assert not by_name.readable_by(STRANGER)


def test_declaring_a_write_to_a_scope_owned_by_another_is_a_contract_violation(
    logged: list[dict[str, object]],
) -> None:
    with pytest.raises(ContractViolation) as caught:
        check_declaration(READER, reads=[], writes=[PREFS])
    error = caught.value
    assert (error.actor, error.scope, error.key, error.access) == (
        "reader-1",
        "prefs",
        None,
        "declare write",
    )
    assert "only its owner 'Writer' may write" in str(error)
    assert logged[-1]["actor"] == "reader-1"
    assert logged[-1]["scope"] == "prefs"


def test_declaring_a_read_the_scope_does_not_allow_is_a_contract_violation() -> None:
    with pytest.raises(ContractViolation) as caught:
        check_declaration(STRANGER, reads=[COUNTERS], writes=[])
    assert caught.value.access == "declare read"
    assert "add the class of 'stranger' to the readers" in str(caught.value)


def test_declaring_two_different_scopes_with_one_name_is_a_contract_violation() -> None:
    twin = Scope("prefs", Prefs, owner="someone-else")
    with pytest.raises(ContractViolation, match="two different scopes"):
        check_declaration(WRITER, reads=[twin], writes=[PREFS])


async def test_a_view_refuses_a_declaration_the_scope_does_not_allow(store: Store) -> None:
    with pytest.raises(ContractViolation):
        StoreView(store, READER, reads=[PREFS], writes=[PREFS])


async def test_a_reader_that_writes_is_refused_and_nothing_is_written(
    store: Store, logged: list[dict[str, object]]
) -> None:
    view = StoreView(store, READER, reads=[PREFS])
    with pytest.raises(ContractViolation) as caught:
        await view.write(PREFS, "ada", Prefs("en"))
    assert (caught.value.key, caught.value.access) == ("ada", "write")
    assert logged[-1] == {
        "actor": "reader-1",
        "scope": "prefs",
        "key": "ada",
        "access": "write",
        "event": "store.contract_violation",
    }
    with pytest.raises(ContractViolation):
        await view.delete(PREFS, "ada")
    assert await store.read(PREFS, "ada") is None


async def test_an_undeclared_actor_that_reads_is_refused(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    view = StoreView(store, STRANGER)
    read_set = ReadSet()
    for attempt in (
        view.read(PREFS, "ada", read_set=read_set),
        view.get(PREFS, "ada"),
        view.scan(PREFS),
        view.watch(PREFS, key="ada", sink=lambda m: None),
        view.check_fresh([ReadEntry("prefs", "ada", 1)]),
    ):
        with pytest.raises(ContractViolation):
            await attempt
    assert len(read_set) == 0


async def test_a_reader_that_did_not_declare_the_scope_is_refused(store: Store) -> None:
    view = StoreView(store, READER, reads=[])
    with pytest.raises(ContractViolation, match="not in the declared reads"):
        await view.get(PREFS, "ada")


async def test_a_scope_object_that_differs_from_the_declared_one_is_refused(store: Store) -> None:
    view = StoreView(store, WRITER, writes=[PREFS])
    impostor = Scope("prefs", Prefs, owner=Writer, readers=["everyone"])
    with pytest.raises(ContractViolation, match="differs from the one declared"):
        await view.write(impostor, "ada", Prefs("en"))
    assert await store.read(PREFS, "ada") is None


async def test_the_owner_writes_as_itself_with_the_current_trace_id(store: Store) -> None:
    trace = ["t-1"]
    view = StoreView(store, WRITER, writes=[PREFS], trace_id=lambda: trace[0])
    first = await view.write(PREFS, "ada", Prefs("en"))
    trace[0] = "t-2"
    second = await view.write(PREFS, "ada", Prefs("fr"), expected=1)
    assert (first.updated_by, first.trace_id) == ("writer-1", "t-1")
    assert (second.updated_by, second.trace_id, second.version) == ("writer-1", "t-2", 2)
    tombstone = await view.delete(PREFS, "ada")
    assert tombstone is not None
    assert tombstone.updated_by == "writer-1"


async def test_an_owner_may_read_what_it_writes(store: Store) -> None:
    view = StoreView(store, WRITER, writes=[PREFS])
    await view.write(PREFS, "ada", Prefs("en"))
    record = await view.get(PREFS, "ada")
    assert isinstance(record, Versioned)
    assert record.value == Prefs("en")


async def test_reads_through_a_view_are_recorded_in_the_read_set(store: Store) -> None:
    writer = StoreView(store, WRITER, writes=[PREFS])
    reader = StoreView(store, READER, reads=[PREFS])
    await writer.write(PREFS, "a", Prefs("en"))
    await writer.write(PREFS, "gone", Prefs("en"))
    await writer.delete(PREFS, "gone")
    await writer.write(PREFS, "s/1", Prefs("en"))
    read_set = ReadSet()
    assert await reader.get(PREFS, "a", read_set=read_set) is not None
    assert await reader.get(PREFS, "absent", read_set=read_set) is None
    assert await reader.get(PREFS, "gone", read_set=read_set) is None
    await reader.scan(PREFS, "s/", read_set=read_set)
    await reader.get(PREFS, "a", read_set=read_set)
    assert list(read_set) == [
        ReadEntry("prefs", "a", 1),
        ReadEntry("prefs", "absent", 0),
        ReadEntry("prefs", "gone", 2),
        ReadEntry("prefs", "s/1", 1),
    ]
    assert await reader.check_fresh(read_set) == ()
    await writer.write(PREFS, "absent", Prefs("fr"))
    assert await reader.check_fresh(read_set) == (ReadEntry("prefs", "absent", 0),)


def test_a_read_set_encodes_with_msgspec() -> None:
    read_set = ReadSet()
    read_set.add("prefs", "a", 3)
    read_set.add("prefs", "a", 3)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(read_set), type=ReadSet)
    assert decoded == read_set
    assert len(decoded) == 1


async def test_a_reader_may_watch_and_its_sink_gets_changes(store: Store) -> None:
    writer = StoreView(store, WRITER, writes=[PREFS])
    reader = StoreView(store, READER, reads=[PREFS])
    got: list[object] = []
    await reader.watch(PREFS, key="ada", sink=got.append)
    await writer.write(PREFS, "ada", Prefs("en"))
    assert len(got) == 1


def test_contract_violation_crosses_a_mailbox_as_error_info() -> None:
    with pytest.raises(ContractViolation) as caught:
        check_declaration(READER, reads=[], writes=[PREFS])
    info = caught.value.to_info()
    assert info.type == "greenroom.ContractViolation"
    assert isinstance(caught.value, UsageError)


def test_a_name_entry_applies_only_to_a_name_the_application_gave() -> None:
    given = Principal(name="auditor", actor_type=Stranger)
    chosen_by_an_actor = Principal(name="auditor", actor_type=Stranger, named=False)
    assert PREFS.readable_by(given)
    assert not PREFS.readable_by(chosen_by_an_actor)
    with pytest.raises(ContractViolation, match=r"an actor \(not the application\) spawned"):
        check_declaration(chosen_by_an_actor, reads=[PREFS], writes=[])


def test_a_class_entry_matches_the_class_object_not_its_qualname() -> None:
    class Writer(Actor):  # the qualname of the owner, another class
        pass

    Writer.__qualname__ = "Writer"
    forged = Principal(name="writer-1", actor_type=Writer)
    assert not PREFS.owned_by(forged)
    assert not PREFS.readable_by(forged)
    real = re.escape("is the class tests.store.conftest.Writer, not")
    with pytest.raises(ContractViolation, match=real):
        check_declaration(forged, reads=[], writes=[PREFS])


def test_a_string_entry_is_looked_up_in_the_module_that_declares_the_scope() -> None:
    # "Writer" and "Stranger" are classes here; "nobody" is not, so it is a name.
    scope = Scope("notes", str, owner="Writer", readers=["Stranger", "nobody"])
    assert scope.owned_by(WRITER)
    assert scope.readable_by(STRANGER)
    assert scope.readable_by(Principal(name="nobody"))
    assert not scope.readable_by(Principal(name="Stranger"))  # a class entry: not a name


async def test_a_view_offers_no_route_to_its_store(store: Store) -> None:
    view = StoreView(store, READER, reads=[PREFS])
    for name in ("store", "_store", "__dict__"):
        assert not hasattr(view, name), name
    public = {n: getattr(view, n) for n in dir(view) if not n.startswith("_")}
    assert all(value is not store for value in public.values())
    assert sorted(public) == [
        "check_fresh",
        "delete",
        "get",
        "principal",
        "read",
        "scan",
        "watch",
        "write",
    ]
