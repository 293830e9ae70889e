"""The texts greenroom never writes: :class:`Secret`, the registry, and :func:`redact_text`.

This is the lowest layer of redaction, below the error tree, so that an
:class:`~greenroom.ErrorInfo` (what a dead letter, a trace and a remote
reply carry) is redacted as it is built. The walker of nested values and
the rules on key names live in ``greenroom.trace`` (``redact_value``,
``is_secret_key``), which re-exports everything here.

A text becomes known to the redactor, process-wide and for good, in one of
three ways:

- wrapping it: ``Secret("sk-...")`` (the value then shows as ``[redacted]``
  wherever the object itself is written, and its text is cut out of every
  other string);
- registering it: ``register_secret("sk-...")``, for a text an application
  holds as a plain ``str``;
- giving it to greenroom as a credential: ``HttpClient(credentials=...)``
  values and the ``OpenAIClient`` API key are registered when configured.

Texts shorter than 4 characters are not registered (they would cut ordinary
words out of everything). Register long-lived secrets (keys, tokens,
passwords), not one value per request: the registry only grows.
"""

from __future__ import annotations

import re
import threading
from typing import Final

__all__ = ["REDACTED", "Secret", "known_secrets", "redact_text", "register_secret"]

REDACTED: Final = "[redacted]"

_MIN_SECRET: Final = 4
_lock = threading.Lock()
_known: set[str] = set()
# Longest first, so a secret that contains another is cut whole. Rebound, never
# mutated, so a reader in another thread sees one consistent tuple.
_known_sorted: tuple[str, ...] = ()

# The credential after an HTTP auth scheme word. ``Bearer`` is followed by a
# token of 4+ characters; the other words are ordinary English too ("the basic
# setup", "an invalid token format"), so their credential must look like one:
# 8+ characters with a digit or one of ``+/=``.
_SCHEME: Final = re.compile(
    r"\b(?:(Bearer)\s+(?=[A-Za-z0-9._~+/=\-]*[0-9+/=])[A-Za-z0-9._~+/=\-]{4,}"
    r"|(Basic|Token|Digest)\s+(?=[A-Za-z0-9._~+/=\-]*[0-9+/=])[A-Za-z0-9._~+/=\-]{8,})",
    re.IGNORECASE,
)


def register_secret(text: str) -> str:
    """Make ``text`` known to the redactor, so it is cut out of everything written.

    Returns ``text`` unchanged, so a call can wrap a value where it is
    configured. Texts under 4 characters are accepted and ignored.

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    global _known_sorted
    if not isinstance(text, str):
        raise TypeError(f"a secret is a str, got {type(text).__name__}")
    if len(text) >= _MIN_SECRET and text not in _known:
        with _lock:
            if text not in _known:
                _known.add(text)
                _known_sorted = tuple(sorted(_known, key=len, reverse=True))
    return text


def known_secrets() -> int:
    """How many texts the redactor cuts out (for tests and diagnostics)."""
    return len(_known_sorted)


class Secret:
    """A value that must never be written: traces, logs and exporters show ``[redacted]``.

    ``str()`` and ``repr()`` do not show it either; :meth:`reveal` does. Its
    text is registered (see :func:`register_secret`), so it is also cut out
    of any other string greenroom writes: an error message, a traceback, a
    log line, a dead letter. A message body cannot hold one: sending a
    message with a ``Secret`` field raises ``InvalidMessage`` (a secret is
    not written to a mailbox either), so send a reference to it instead.

    Raises:
        TypeError: ``value`` is not a ``str``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, got {type(value).__name__}")
        self._value = register_secret(value)

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


def redact_text(text: str) -> str:
    """``text`` with every known secret and every ``Bearer ...``-style credential cut out.

    Idempotent, and never raises for a ``str``.
    """
    for secret in _known_sorted:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "earer" in text or "asic" in text or "oken" in text or "igest" in text:
        text = _SCHEME.sub(_cut_credential, text)
    return text


def _cut_credential(match: re.Match[str]) -> str:
    return f"{match.group(1) or match.group(2)} {REDACTED}"
