"""Effect classes: what running a tool does to the world, declared by every tool.

The declaration is plain, validated data. The tools core only checks it
(an idempotency key names a field of ``Input``; an undo tool is registered);
a side-effect ledger reads it to decide what may run again after a crash:

- :data:`PURE` -- no effect outside the process; safe to run any number of times.
- :class:`Idempotent` -- running it twice with the same value of field ``key``
  has the effect of running it once; after a crash it runs again with that key.
- :class:`Compensable` -- its effect can be undone by the tool named ``undo``.
- :data:`IRREVERSIBLE` -- its effect cannot be undone or repeated safely; it is
  never run twice automatically.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from greenroom.tools._errors import InvalidTool

__all__ = ["IRREVERSIBLE", "PURE", "Compensable", "Effect", "Idempotent", "Irreversible", "Pure"]


class Pure(msgspec.Struct, frozen=True, tag="pure"):
    """No effect outside the process: the same input may run any number of times."""


class Idempotent(msgspec.Struct, frozen=True, kw_only=True, tag="idempotent"):
    """Repeating a call with the same value of Input field ``key`` has no further effect."""

    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise InvalidTool(
                "(effect)",
                f"Idempotent.key must name a field of Input, got {self.key!r}",
                "write Idempotent(key='field_name')",
            )


class Compensable(msgspec.Struct, frozen=True, kw_only=True, tag="compensable"):
    """The effect can be undone by the registered tool named ``undo``."""

    undo: str

    def __post_init__(self) -> None:
        if not isinstance(self.undo, str) or not self.undo:
            raise InvalidTool(
                "(effect)",
                f"Compensable.undo must name a tool, got {self.undo!r}",
                "write Compensable(undo='undo_tool_name')",
            )


class Irreversible(msgspec.Struct, frozen=True, tag="irreversible"):
    """The effect cannot be undone, and repeating it is not safe."""


Effect: TypeAlias = Pure | Idempotent | Compensable | Irreversible
"""A tool's declared effect: a tagged union, so it travels in messages and records."""

PURE = Pure()
"""The effect of a tool with no effect outside the process."""

IRREVERSIBLE = Irreversible()
"""The effect of a tool whose effect cannot be undone or repeated safely."""
