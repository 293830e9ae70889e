"""Arguments from a model, validated into a tool's ``Input``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Generic, TypeVar

import msgspec

from greenroom.tools._errors import ToolInputError

__all__ = ["Arguments", "ArgumentDecoder"]

T = TypeVar("T")

Arguments = str | bytes | Mapping[str, object]
"""Tool arguments as a model sends them: JSON text, or JSON already decoded to a dict."""

_PATH = re.compile(r" - at `(.*)`$")


class ArgumentDecoder(Generic[T]):
    """Validates arguments into ``input_type``; made once per tool.

    msgspec's rules apply unchanged: no coercion (``"1"`` is not an int),
    every constraint of ``msgspec.Meta`` is checked, unknown fields are
    ignored unless the Struct sets ``forbid_unknown_fields=True``.
    """

    __slots__ = ("_decoder", "_tool", "_type")

    def __init__(self, tool: str, input_type: type[T]) -> None:
        self._tool = tool
        self._type = input_type
        self._decoder = msgspec.json.Decoder(input_type)

    def decode(self, arguments: object) -> T:
        """``arguments`` as a valid ``Input``.

        Accepts JSON text (``str`` or ``bytes``) or a mapping of decoded
        JSON. Any other value, text that is not JSON, or JSON that does not
        match ``Input`` is refused.

        Raises:
            ToolInputError: the arguments do not validate; its message says
                what was expected, what was found and the JSON path.
        """
        try:
            if isinstance(arguments, str | bytes | bytearray | memoryview):
                return self._decoder.decode(arguments)
            if not isinstance(arguments, Mapping):
                raise ToolInputError(
                    self._tool,
                    f"Expected `object`, got `{type(arguments).__name__}`",
                    "$",
                )
            return msgspec.convert(arguments, self._type)
        except msgspec.ValidationError as exc:
            text = str(exc)
            found = _PATH.search(text)
            raise ToolInputError(self._tool, text, found.group(1) if found else "$") from exc
        except msgspec.DecodeError as exc:
            raise ToolInputError(
                self._tool, f"the arguments are not valid JSON: {exc}", None
            ) from exc
        except RecursionError as exc:
            raise ToolInputError(self._tool, "the arguments are nested too deeply", None) from exc
