"""Redaction: secrets are removed from everything greenroom writes, by default.

Redaction is on by default and cannot be turned off. It is applied where
data leaves the process: the trace store (span names, attributes, errors),
the HTML timeline and the OpenTelemetry export (again, on output), every
:class:`~greenroom.ErrorInfo` as it is built (so dead letters in sqlite and
Redis, remote replies, the tool ledger and approvals), greenroom's own log
records (its modules log through a redacting logger; see ``_logging``), and
``greenroom dlq`` / ``greenroom trace`` output.

Three rules, applied to every value however deeply nested in dicts, lists
and tuples (msgspec Structs and dataclasses are walked as their fields):

1. A value under a key that names a secret is replaced: ``api_key``,
   ``apiKey``, ``x-api-key``, ``Authorization``, ``Proxy-Authorization``,
   ``Cookie``, ``Set-Cookie``, ``password``, ``secret``, ``client_secret``,
   ``token``, ``access_token``, ``private_key``, ``credentials``, ... A pair
   ``("Authorization", value)`` in a list of headers counts as such a key.
   Token *counts* (``gen_ai.usage.input_tokens``, ``max_tokens``) are kept.
2. A :class:`Secret` is replaced wherever it appears.
3. Every known secret text is cut out of every string written (values,
   error messages, tracebacks, log lines), and so is the credential of an
   ``Authorization``-style ``Bearer``/``Basic``/``Token``/``Digest`` string.

How a text becomes known (rule 3), for the life of the process:

- ``Secret("...")``: wrap it; the object shows as ``[redacted]``;
- ``register_secret("...")``: for a secret held as a plain ``str``;
- configuring greenroom with it: ``HttpClient(credentials=...)`` header
  values (and the token after ``Bearer``) and the ``OpenAIClient`` API key
  are registered when the client is made.

A separate process (the ``greenroom`` CLI) knows only rules 1 and 2 and the
``Bearer`` patterns: a secret must be cut where it is written, in the
process that knows it, and it is.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping

import msgspec

from greenroom._errors import ErrorInfo
from greenroom._secrets import REDACTED, Secret, redact_text, register_secret
from greenroom.trace._span import Span

__all__ = [
    "REDACTED",
    "Secret",
    "is_secret_key",
    "redact_span",
    "redact_text",
    "redact_value",
    "register_secret",
]

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
_key_cache: dict[str, bool] = {}


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


def redact_span(span: Span) -> Span:
    """A copy of ``span`` with its name, attributes and error redacted again.

    For output (the HTML timeline, the OTel export): spans are redacted when
    they are written, and again here with what this process knows, so a span
    that did not come from a trace store is covered too. Never raises.
    """
    attributes = redact_value(span.attributes) if span.attributes else {}
    error = span.error
    if error is not None:
        error = ErrorInfo(
            type=redact_text(error.type), message=error.message, traceback=error.traceback
        )
    return msgspec.structs.replace(
        span,
        name=redact_text(span.name) if type(span.name) is str else span.name,
        actor=redact_text(span.actor) if type(span.actor) is str else span.actor,
        attributes=attributes if isinstance(attributes, dict) else {},
        error=error,
    )


def _enc_hook(value: object) -> object:
    if isinstance(value, Secret):
        return REDACTED
    return _safe_str(value)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
