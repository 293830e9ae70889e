"""Arguments from a model, validated into a tool's ``Input``.

Validation is total and comes before anything is spent: whatever a caller
passes, :meth:`ArgumentDecoder.decode` returns an ``Input`` that encodes as
JSON (what the tool box hashes, records and traces) or raises
:class:`ToolInputError`. So a lone surrogate (``"a\\ud800b"``, text that is
not Unicode and cannot be UTF-8-encoded), nesting past :data:`MAX_DEPTH`
or past the recursion limit, and any value msgspec cannot convert are input
errors, never a "tool failed" after a budget was charged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Generic, TypeVar

import msgspec

from greenroom.tools._errors import ToolInputError

__all__ = ["MAX_DEPTH", "Arguments", "ArgumentDecoder"]

T = TypeVar("T")

Arguments = str | bytes | Mapping[str, object]
"""Tool arguments as a model sends them: JSON text, or JSON already decoded to a dict."""

MAX_DEPTH = 128
"""The deepest nesting of arrays and objects in an Input's JSON (a tree counts two a level)."""

_PATH = re.compile(r" - at `(.*)`$")
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON strings (unrolled: no backtracking on a long one); brackets inside them do not count
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(rb"[\[\]{}]")
_ENCODE = msgspec.json.Encoder().encode


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
        JSON. Any other value, text that is not JSON, JSON that does not
        match ``Input``, and a value that does not encode back to JSON (a
        lone surrogate in a string, nesting past :data:`MAX_DEPTH`) are
        refused. Never raises anything else.

        Raises:
            ToolInputError: the arguments do not validate; its message says
                what was expected, what was found and the JSON path.
        """
        try:
            if isinstance(arguments, str | bytes | bytearray | memoryview):
                value: T = self._decoder.decode(arguments)
            elif not isinstance(arguments, Mapping):
                raise ToolInputError(
                    self._tool,
                    f"Expected `object`, got `{type(arguments).__name__}`",
                    "$",
                )
            else:
                value = msgspec.convert(arguments, self._type)
        except ToolInputError:
            raise
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
        except UnicodeEncodeError as exc:  # str arguments holding a lone surrogate
            raise ToolInputError(self._tool, _not_unicode(exc), None) from exc
        except Exception as exc:  # total: whatever a hostile value provokes is an input error
            raise ToolInputError(
                self._tool, f"the arguments cannot be read: {type(exc).__name__}: {exc}", "$"
            ) from exc
        return self.check(value)

    def check(self, value: T) -> T:
        """``value`` (an ``Input``), once it is known to encode as JSON within :data:`MAX_DEPTH`.

        Raises:
            ToolInputError: a string holds a lone surrogate (its path is
                given), or the value nests too deeply.
        """
        try:
            encoded = _ENCODE(value)
        except UnicodeEncodeError as exc:
            raise ToolInputError(self._tool, _not_unicode(exc), _surrogate_path(value)) from exc
        except RecursionError as exc:
            raise ToolInputError(self._tool, "the arguments are nested too deeply", "$") from exc
        except Exception as exc:  # an Input built in code may hold anything
            raise ToolInputError(
                self._tool, f"the arguments do not encode as JSON: {type(exc).__name__}: {exc}", "$"
            ) from exc
        if _too_deep(encoded):
            raise ToolInputError(
                self._tool,
                f"expected arrays and objects nested at most {MAX_DEPTH} deep, got deeper",
                "$",
            )
        return value


def _not_unicode(exc: UnicodeEncodeError) -> str:
    found = exc.object[exc.start : exc.end]
    return (
        f"expected Unicode text, got a lone surrogate {found!a}; it cannot be encoded as "
        "UTF-8: send the text without it"
    )


def _too_deep(encoded: bytes) -> bool:
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", encoded)):
        if match.group() in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _surrogate_path(value: object) -> str:
    """The JSON path of the first string (or key) holding a surrogate; walked without recursion."""
    pending: list[tuple[str, object]] = [("$", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, msgspec.Struct):
            fields = msgspec.structs.fields(item)
            pending.extend(
                (f"{path}.{f.encode_name}", getattr(item, f.name)) for f in reversed(fields)
            )
        elif isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                if isinstance(key, str) and _SURROGATE.search(key):
                    return path
                pending.append((f"{path}.{key}", inner))
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend((f"{path}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))
    return "$"
