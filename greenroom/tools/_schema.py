"""JSON Schema for function calling, derived from a tool's ``Input`` Struct.

msgspec writes the schema (``msgspec.json.schema``); this module reshapes it
into what the OpenAI tools API accepts:

- the root is the ``Input`` object itself, not a ``$ref`` to it; other Structs
  and enums stay in ``$defs`` and are referenced with ``#/$defs/Name``;
- every object has ``additionalProperties: false``;
- an ``enum`` of strings (or integers) also says its ``type``;
- a ``$ref`` with siblings (a field's description on a Struct-typed field) is
  inlined, because the API ignores siblings of ``$ref``;
- in strict mode every property is required (fields with a default must
  still be sent; ``X | None`` fields accept ``null``), ``default`` is dropped,
  and keywords the strict mode does not support (``minLength``,
  ``maxLength``, ``uniqueItems``, ...) are dropped. Dropping only widens
  what the schema admits: the arguments are still validated against
  ``Input`` with every constraint, and a violation comes back to the model
  as a :class:`ToolInputError`. A mapping (``dict[str, X]``) or a tuple
  cannot be expressed in strict mode: such a tool must set ``strict = False``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Required, TypeAlias, TypedDict

import msgspec

from greenroom.tools._errors import InvalidTool

__all__ = ["FunctionDefinition", "JsonSchema", "ToolDefinition", "input_schema"]

JsonSchema: TypeAlias = dict[str, object]
"""A JSON Schema document as plain data."""


class FunctionDefinition(TypedDict, total=False):
    """The ``function`` member of an OpenAI tools entry.

    Shaped exactly as the openai package's own ``FunctionDefinition``, so a
    type checker accepts it wherever openai expects one.
    """

    name: Required[str]
    description: str
    parameters: JsonSchema
    strict: bool | None


class ToolDefinition(TypedDict, total=False):
    """One entry of the OpenAI ``tools=[...]`` parameter: ``{"type": "function", ...}``."""

    function: Required[FunctionDefinition]
    type: Required[Literal["function"]]


_STRICT_KEYS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "enum",
        "const",
        "$ref",
        "$defs",
        "description",
        "title",
        "pattern",
        "format",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
    }
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)


def input_schema(tool: str, input_type: type, *, strict: bool) -> JsonSchema:
    """The parameters schema of tool ``tool`` whose arguments decode into ``input_type``.

    Raises:
        InvalidTool: ``input_type`` is not a Struct that encodes as a JSON
            object, msgspec cannot describe it, or ``strict`` is asked for a
            type the strict mode cannot express.
    """
    if not (isinstance(input_type, type) and issubclass(input_type, msgspec.Struct)):
        raise InvalidTool(
            tool,
            f"Input must be a msgspec.Struct class, got {input_type!r}",
            "define `class Input(msgspec.Struct): ...`",
        )
    if input_type.__struct_config__.array_like:
        raise InvalidTool(
            tool, "Input is array_like, so its arguments are not a JSON object", "drop array_like"
        )
    try:
        raw = msgspec.json.schema(input_type)
    except (TypeError, ValueError) as exc:
        raise InvalidTool(
            tool, f"msgspec cannot describe Input: {exc}", "use types msgspec supports"
        ) from exc
    defs: dict[str, Any] = copy.deepcopy(raw.get("$defs", {}))
    root_name = str(raw["$ref"]).rsplit("/", 1)[-1]
    shaper = _Shaper(tool, defs, strict=strict)
    for name in list(defs):
        defs[name] = shaper.shape(defs[name], f"$defs/{name}")
    root = dict(defs[root_name])
    root.pop("title", None)
    if not _references(defs, f"#/$defs/{root_name}"):
        del defs[root_name]  # a recursive Input keeps its definition for its references
    if defs:
        root["$defs"] = defs
    return root


def _references(node: object, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_references(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_references(v, ref) for v in node)
    return False


class _Shaper:
    """Rewrites one schema node at a time (in place of a copy), recursively."""

    def __init__(self, tool: str, defs: dict[str, Any], *, strict: bool) -> None:
        self.tool = tool
        self.defs = defs
        self.strict = strict

    def shape(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        ref = node.get("$ref")
        if ref is not None and len(node) > 1:
            target = self.defs[str(ref).rsplit("/", 1)[-1]]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.shape(merged, where)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: self.shape(sub, f"{where}.{name}") for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                if key == "additionalProperties" and self.strict:
                    raise InvalidTool(
                        self.tool,
                        f"the mapping at {where} cannot be expressed in strict mode",
                        "use a list of Structs instead of a dict, or set `strict = False`",
                    )
                out[key] = self.shape(value, f"{where}[]")
            elif key == "prefixItems" and self.strict:
                raise InvalidTool(
                    self.tool,
                    f"the tuple at {where} cannot be expressed in strict mode",
                    "use a Struct or a list instead of a tuple, or set `strict = False`",
                )
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                out[key] = [self.shape(sub, where) for sub in value]
            else:
                out[key] = value
        if out.get("type") == "object" and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if "enum" in out and "type" not in out:
            values = out["enum"]
            if all(isinstance(v, str) for v in values):
                out["type"] = "string"
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                out["type"] = "integer"
        if self.strict:
            out = self._strict(out)
        return out

    def _strict(self, out: dict[str, Any]) -> dict[str, Any]:
        if "properties" in out:
            out["required"] = list(out["properties"])
        if out.get("format") not in (None, *_STRICT_FORMATS):
            del out["format"]
        if "oneOf" in out:
            out["anyOf"] = out.pop("oneOf")
        return {k: v for k, v in out.items() if k in _STRICT_KEYS}
