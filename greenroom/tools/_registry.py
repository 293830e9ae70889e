"""ToolRegistry: the tools a runtime knows, by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from greenroom.tools._effect import Compensable
from greenroom.tools._errors import InvalidGrant, InvalidTool
from greenroom.tools._grant import Grant
from greenroom.tools._schema import ToolDefinition
from greenroom.tools._tool import Tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """The tools a runtime knows, by name, in the order they were added.

    A registry has no global instance: build one and pass it to
    :class:`ToolAccess`. Adding is for setup; once an access uses it, treat
    it as read-only.
    """

    __slots__ = ("_tools",)

    def __init__(self, tools: Iterable[Tool[Any, Any]] = ()) -> None:
        self._tools: dict[str, Tool[Any, Any]] = {}
        for item in tools:
            self.add(item)

    def add(self, tool: Tool[Any, Any]) -> None:
        """Register ``tool`` under its name.

        Raises:
            InvalidTool: it is not a Tool instance, or the name is taken.
        """
        if not isinstance(tool, Tool):
            raise InvalidTool(
                repr(tool),
                f"expected a Tool instance, got {type(tool).__name__}",
                "register `MyTool()` (an instance) or a function decorated with @tool(...)",
            )
        if tool.name in self._tools:
            raise InvalidTool(
                tool.name,
                "a tool of that name is registered already",
                "give each tool its own name",
            )
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool[Any, Any] | None:
        """The tool named ``name``, or ``None``."""
        return self._tools.get(name)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in the order added."""
        return tuple(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool[Any, Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def definitions(self, names: Iterable[str] | None = None) -> list[ToolDefinition]:
        """The OpenAI tools entries of ``names`` (every tool when ``None``), in that order.

        Raises:
            KeyError: a name is not registered.
        """
        chosen = self._tools if names is None else names
        return [self._tools[name].definition() for name in chosen]

    def check(self) -> None:
        """Check references between tools: every ``Compensable.undo`` names a registered tool.

        Raises:
            InvalidTool: an undo tool is missing.
        """
        for tool in self._tools.values():
            effect = tool.effect
            if isinstance(effect, Compensable) and effect.undo not in self._tools:
                raise InvalidTool(
                    tool.name,
                    f"its undo tool {effect.undo!r} is not registered",
                    f"register the tool {effect.undo!r} too",
                )

    def check_grant(self, grant: Grant) -> None:
        """Check ``grant`` against the tool it names.

        Raises:
            InvalidGrant: the tool is not registered, or a narrowed field is
                not a field of its Input, or an allowed value is not a valid
                value of that field.
        """
        tool = self._tools.get(grant.tool)
        if tool is None:
            raise InvalidGrant(
                grant.tool,
                "no tool of that name is registered",
                f"register it, or grant one of: {', '.join(self._tools) or 'none'}",
            )
        fields = {f.name: f.type for f in msgspec.structs.fields(tool.Input)}
        for field, values in grant.narrow.items():
            if field not in fields:
                raise InvalidGrant(
                    grant.tool,
                    f"it narrows {field!r}, which is not a field of {tool.Input.__qualname__}",
                    f"narrow one of: {', '.join(fields) or '(no fields)'}",
                )
            for value in values:
                try:
                    msgspec.convert(value, fields[field])
                except msgspec.ValidationError as exc:
                    raise InvalidGrant(
                        grant.tool,
                        f"{field!r} allows {value!r}, which the field never takes: {exc}",
                        "allow values of the field's type",
                    ) from exc
