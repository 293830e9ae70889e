"""Scopes are validated when they are built, and compare as plain data."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import msgspec
import pytest

import greenroom.store
from greenroom.store import InvalidScope, Scope
from tests.store.conftest import PREFS, Prefs, Reader, Writer


def test_a_scope_names_owner_and_readers_by_name_or_class_qualname() -> None:
    assert PREFS.owner == "Writer"
    assert PREFS.readers == frozenset({"Reader", "auditor"})
    assert (PREFS.name, PREFS.type) == ("prefs", Prefs)
    assert repr(PREFS) == "Scope('prefs', Prefs, owner='Writer', readers=[Reader, auditor])"


def test_equal_scopes_compare_and_hash_equal() -> None:
    again = Scope("prefs", Prefs, owner="Writer", readers=["auditor", Reader])
    assert again == PREFS
    assert hash(again) == hash(PREFS)
    assert Scope("prefs", Prefs, owner=Writer) != PREFS


def test_a_scope_is_immutable() -> None:
    with pytest.raises(AttributeError):
        PREFS.name = "other"  # type: ignore[misc]


class Other(msgspec.Struct):
    """A second untagged struct: a union of it and Prefs is ambiguous to msgspec."""

    name: str


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("", Prefs, "w"), "non-empty"),
        ((" prefs", Prefs, "w"), "non-empty"),
        (("prefs", Prefs | Other, "w"), "msgspec cannot encode"),
        (("prefs", Prefs, ""), "exactly one owner"),
        (("prefs", Prefs, ["a", "b"]), "exactly one owner"),
        (("prefs", Prefs, "w", "reader"), "pass readers=\\['reader'\\]"),
        (("prefs", Prefs, "w", Reader), "pass readers="),
        (("prefs", Prefs, "w", [3]), "a reader must be"),
    ],
)
def test_a_scope_that_cannot_work_raises_invalid_scope_with_the_fix(
    arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(InvalidScope, match=message):
        Scope(*arguments)  # type: ignore[arg-type]


def test_a_scope_type_may_be_a_builtin_generic() -> None:
    scope: Scope[dict[str, list[int]]] = Scope("lists", dict[str, list[int]], owner="w")
    assert scope.decoder.decode(msgspec.msgpack.encode({"a": [1]})) == {"a": [1]}


def test_store_exports_exactly_its_all() -> None:
    public = {
        name
        for name, value in vars(greenroom.store).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(greenroom.store.__all__)


def test_every_store_module_has_all_and_stays_small() -> None:
    package = Path(greenroom.store.__file__).parent
    for module in package.glob("*.py"):
        text = module.read_text()
        assert "__all__" in text, module.name
        assert text.count("\n") < 400, f"{module.name} has grown past 400 lines"
