"""The public API: __all__ everywhere public, and what greenroom exports."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import greenroom

PUBLIC = ["greenroom"] + [
    f"greenroom.{m.name}" for m in pkgutil.iter_modules(greenroom.__path__) if m.ispkg
]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_module_has_a_sorted_complete_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported), "duplicates in __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"
    # "@py_builtins" and the like: pytest's assertion rewriting of the plugin package
    public = {k for k in vars(module) if not k.startswith(("_", "@"))}
    submodules = {m.name for m in pkgutil.iter_modules(getattr(module, "__path__", []))}
    stray = public - set(exported) - submodules - {"annotations"}
    assert not stray, f"{name} has public names not in __all__: {sorted(stray)}"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    missing = [
        item
        for item in module.__all__
        if callable(obj := getattr(module, item)) and isinstance(obj, type) and not obj.__doc__
    ]
    assert not missing, f"{name}: no docstring on {missing}"


def test_top_level_exports_the_core_runtime() -> None:
    from greenroom import actors, mailbox

    for sub, names in (
        (actors, ["Actor", "ActorRef", "Runtime", "SupervisorSpec", "ChildSpec", "PoolSpec"]),
        (mailbox, ["Message", "Request", "Envelope", "MailboxConfig", "DeadLetter"]),
    ):
        for n in names:
            assert getattr(greenroom, n) is getattr(sub, n)


def test_death_watch_is_exported_at_the_top_level() -> None:
    from greenroom import actors

    assert greenroom.Terminated is actors.Terminated
    assert "TerminationReason" in actors.__all__


def test_every_error_derives_from_greenroom_error() -> None:
    errors = [getattr(greenroom, n) for n in greenroom.__all__ if n.endswith(("Error", "Full"))]
    errors += [greenroom.AskTimeout, greenroom.ActorStopped, greenroom.Escalated]
    for error in errors:
        assert issubclass(error, greenroom.GreenroomError), error


class _Unknown(greenroom.Message):
    pass


class _Mute(greenroom.Actor):
    pass


def _dead_letter_once() -> None:
    async def main() -> None:
        async with greenroom.Runtime() as rt:
            ref = await rt.spawn(_Mute)
            await ref.tell(_Unknown())
            await ref.tell(_Unknown())

    greenroom.run(main)


def test_library_logging_is_disabled_until_the_application_enables_it() -> None:
    from loguru import logger

    records: list[str] = []
    sink = logger.add(records.append, level="DEBUG", format="{name} {message}")
    try:
        _dead_letter_once()
        assert [r for r in records if r.startswith("greenroom")] == []
        logger.enable("greenroom")
        _dead_letter_once()
        assert any("dead letter" in r for r in records if r.startswith("greenroom"))
    finally:
        logger.disable("greenroom")
        logger.remove(sink)


PUBLIC_MODULES = [
    "greenroom",
    "greenroom.actors",
    "greenroom.agent",
    "greenroom.decide",
    "greenroom.mailbox",
    "greenroom.store",
    "greenroom.testing",
    "greenroom.tools",
    "greenroom.trace",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_exported_errors_show_a_public_name_in_tracebacks(module_name: str) -> None:
    import importlib
    import traceback

    module = importlib.import_module(module_name)
    errors = [
        getattr(module, name)
        for name in module.__all__
        if isinstance(getattr(module, name, None), type)
        and issubclass(getattr(module, name), BaseException)
    ]
    if module_name == "greenroom":
        assert len(errors) >= 19
    for cls in errors:
        home = cls.__module__
        assert not any(part.startswith("_") for part in home.split(".")), cls
        assert getattr(importlib.import_module(home), cls.__name__) is cls
        shown = traceback.format_exception_only(cls.__new__(cls))[0]
        assert shown.startswith(f"{home}.{cls.__qualname__}"), shown
