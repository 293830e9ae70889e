r"""Text made safe to print on a terminal: redacted, with control characters escaped.

Everything the ``greenroom`` command prints that it read from a database or
a Redis stream (actor names, error messages, tracebacks, message bodies,
span names and attributes), and every error line it writes, goes through
:func:`terminal_text`, or :func:`terminal_json` for ``--json`` output. So a
stored ``ESC [2J`` shows as the text ``\x1b[2J`` instead of clearing the
screen, and the text of a known :class:`~greenroom.trace.Secret` shows as
``[redacted]`` (:func:`~greenroom.trace.redact_text`).

Escaped as ``\xNN`` or ``\uNNNN`` (the way ``repr`` writes them):

- the C0 controls U+0000-U+001F (but the newline and the tab of a
  multi-line block such as a traceback), DEL and the C1 controls
  U+007F-U+009F: they drive the terminal (ESC and CSI start escape
  sequences, a carriage return overwrites the line shown);
- the bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E and
  U+2066-U+2069: they reorder the text after them ("Trojan Source");
- the line and paragraph separators U+2028 and U+2029;
- lone surrogates U+D800-U+DFFF (bytes that were not UTF-8, read with
  ``surrogateescape``): they cannot be encoded, and printing them raises.

A backslash is left as it is: the escaping keeps the terminal safe, it is
not meant to be reversed.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from greenroom.trace._redact import redact_text, redact_value

__all__ = ["terminal_json", "terminal_text", "unsafe_for_terminal"]

_BIDI: Final = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_SURROGATES: Final = "\ud800-\udfff"
_LINE: Final = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_SURROGATES}]")
_BLOCK: Final = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_SURROGATES}]")
# What JSON text may still hold raw after encoding (it escapes C0 itself).
_IN_JSON: Final = re.compile(f"[\x7f-\x9f{_BIDI}]")
_LONE: Final = re.compile(f"[{_SURROGATES}]")
_encode_json = msgspec.json.Encoder(enc_hook=str).encode


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def unsafe_for_terminal(text: str, *, multiline: bool = True) -> bool:
    """Whether ``text`` holds a character :func:`terminal_text` would escape."""
    return (_BLOCK if multiline else _LINE).search(text) is not None


def terminal_text(value: object, *, multiline: bool = False) -> str:
    r"""``value`` as text safe to print: redacted, control characters escaped.

    ``multiline`` keeps newlines and tabs (a traceback, a rendered tree);
    otherwise they are escaped too, so one value stays on one line. A value
    that is not a ``str`` is shown as its ``str()`` (or a marker, if even
    that raises). Never raises.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:
            text = f"<unprintable {type(value).__name__}>"
    return (_BLOCK if multiline else _LINE).sub(_escape, redact_text(text))


def _no_surrogates(value: object) -> object:
    if isinstance(value, str):
        return _LONE.sub(_escape, value)
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    return value


def terminal_json(value: object) -> str:
    r"""``value`` as one line of JSON safe to print: redacted, plain, terminal controls escaped.

    The value is made plain data first (:func:`~greenroom.trace.redact_value`:
    secrets replaced, nesting past 64 levels cut, bytes and other objects
    shown as text); a lone surrogate becomes its escape as text (``\udc80``);
    NaN and infinities become ``null``. JSON escapes the C0 controls itself;
    DEL, the C1 controls and the bidi controls are written as ``\u`` escapes
    (``\u202e``), so the line is still valid JSON and decodes to the same
    strings. Never raises.
    """
    try:
        text = _encode_json(_no_surrogates(redact_value(value))).decode()
    except Exception as error:  # redact_value makes plain data: this is a last resort
        text = _encode_json(f"<cannot be shown as JSON: {type(error).__name__}>").decode()
    return _IN_JSON.sub(_json_escape, text)
