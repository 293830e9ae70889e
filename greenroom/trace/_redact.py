"""Redaction: secrets are removed from span data before anything is written.

Three rules, applied to every attribute value however deeply nested in
dicts, lists and tuples (msgspec Structs and dataclasses are walked as
their fields):

1. A value under a key that names a secret is replaced: ``api_key``,
   ``apiKey``, ``x-api-key``, ``Authorization``, ``Proxy-Authorization``,
   ``Cookie``, ``Set-Cookie``, ``password``, ``secret``, ``client_secret``,
   ``token``, ``access_token``, ``private_key``, ``credentials``, ... A pair
   ``("Authorization", value)`` in a list of headers counts as such a key.
   Token *counts* (``gen_ai.usage.input_tokens``, ``max_tokens``) are kept.
2. A :class:`Secret` is replaced wherever it appears.
3. The text of every :class:`Secret` made in this process is cut out of
   every string written (values, error messages, tracebacks), and so is the
   credential of an ``Authorization``-style ``Bearer``/``Basic`` string.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from typing import Final

import msgspec

__all__ = ["REDACTED", "Secret", "is_secret_key", "redact_text", "redact_value"]

REDACTED: Final = "[redacted]"

_MIN_SECRET = 4  # shorter texts would cut ordinary words out of everything
_known: set[str] = set()
_known_sorted: list[str] = []

_SECRET_WORDS = frozenset(
    {
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "bearer",
        "signature",
    }
)
_SECRET_PAIRS = frozenset(
    {"apikey", "privatekey", "secretkey", "accesskey", "sessionid", "sessionkey", "signingkey"}
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORDS = re.compile(r"[^a-z0-9]+")
_SCHEME = re.compile(r"\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=\-]{4,}", re.IGNORECASE)
_key_cache: dict[str, bool] = {}


class Secret:
    """A value that must never be written: traces, logs and exporters show ``[redacted]``.

    ``str()`` and ``repr()`` do not show it either; :meth:`reveal` does. Its
    text is also cut out of any other string a trace writes, so a secret
    echoed in an error message does not leak that way.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, got {type(value).__name__}")
        self._value = value
        if len(value) >= _MIN_SECRET and value not in _known:
            _known.add(value)
            # Longest first, so a secret that contains another is cut whole.
            _known_sorted[:] = sorted(_known, key=len, reverse=True)

    def reveal(self) -> str:
        """The secret text itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` is a secret (see rule 1 above)."""
    cached = _key_cache.get(key)
    if cached is not None:
        return cached
    words = [w for w in _WORDS.split(_CAMEL.sub(r"\1_\2", key).lower()) if w]
    found = any(w in _SECRET_WORDS for w in words) or any(
        a + b in _SECRET_PAIRS for a, b in itertools.pairwise(words)
    )
    found = found or any(w.endswith(("apikey", "token", "password", "secret")) for w in words)
    if len(_key_cache) < 4096:
        _key_cache[key] = found
    return found


def redact_text(text: str) -> str:
    """``text`` with every known :class:`Secret` and every ``Bearer ...`` credential cut out."""
    for secret in _known_sorted:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "earer" in text or "asic" in text or "oken" in text or "igest" in text:
        text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return text


def redact_value(value: object, _depth: int = 0) -> object:
    """``value`` as plain JSON-able data, with every secret in it replaced.

    Dicts become dicts with ``str`` keys, lists and tuples lists, Structs and
    dataclasses dicts of their fields; anything else that is not plain data
    becomes its redacted ``str``. Never raises; nesting past 64 levels is cut.
    """
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        return redact_text(value)  # type: ignore[arg-type]
    if _depth > 64:
        return "[too deep]"
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for k, v in value.items():
            key = k if isinstance(k, str) else str(k)
            out[redact_text(key)] = REDACTED if is_secret_key(key) else redact_value(v, _depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        if len(value) == 2 and isinstance(value, list | tuple):
            first = value[0]
            if isinstance(first, str) and is_secret_key(first):
                return [redact_text(first), REDACTED]
        return [redact_value(v, _depth + 1) for v in value]
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, msgspec.Struct) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        try:
            plain = msgspec.to_builtins(value, enc_hook=_enc_hook)
        except Exception:
            return redact_text(_safe_str(value))
        return redact_value(plain, _depth + 1)
    return redact_text(_safe_str(value))


def _enc_hook(value: object) -> object:
    if isinstance(value, Secret):
        return REDACTED
    return _safe_str(value)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
