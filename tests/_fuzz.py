"""Shared fuzzing kit: hostile inputs drawn from their natural distribution, and counts.

Every fuzz test at a decode boundary draws its inputs from :func:`hostile_bytes`
(or :func:`hostile_values` for already-decoded data), classifies each case as
accepted, refused with a typed error (or dead-lettered), or escaped, and calls
:func:`record`. The session's terminal summary prints one line per boundary::

    fuzz sqlite-mailbox-rows: tried 400, accepted 31, typed 369, escaped 0

so the figures of a run can be quoted. Budgets are small and fixed
(``FUZZ_SETTINGS``), so the suite stays within its time.
"""

from __future__ import annotations

import collections
import string
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["FUZZ_SETTINGS", "Counts", "counts", "deep", "hostile_bytes", "hostile_values", "record"]

FUZZ_SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


class Counts:
    """Figures of one boundary: cases tried, accepted, refused with a typed error, escaped."""

    __slots__ = ("accepted", "escaped", "tried", "typed")

    def __init__(self) -> None:
        self.tried = self.accepted = self.typed = self.escaped = 0

    def __str__(self) -> str:
        return (
            f"tried {self.tried}, accepted {self.accepted}, "
            f"typed {self.typed}, escaped {self.escaped}"
        )


counts: dict[str, Counts] = collections.defaultdict(Counts)


def record(boundary: str, outcome: str) -> None:
    """Count one case at ``boundary``: ``outcome`` is accepted, typed or escaped."""
    entry = counts[boundary]
    entry.tried += 1
    setattr(entry, outcome, getattr(entry, outcome) + 1)


def deep(depth: int, leaf: Any = 1, *, kind: str = "list") -> Any:
    """A value nested ``depth`` levels deep (lists or maps)."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


_INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]


@st.composite
def hostile_bytes(draw: st.DrawFn, good: bytes | None = None) -> bytes:
    """Bytes a hostile or broken peer might send in place of ``good``.

    Random bytes; ``good`` with bit flips, truncated, or extended; msgpack
    strs of invalid UTF-8; nesting 500-5,000 deep; huge strings; NaN and
    infinities; unhashable map keys and tags; ints past 64 bits.
    """
    choices = ["random", "invalid_utf8", "deep", "huge", "float", "unhashable", "bigint"]
    if good is not None:
        choices += ["flip", "flip", "truncate", "extend"]
    kind = draw(st.sampled_from(choices))
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "flip" and good:
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "truncate" and good:
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "extend" and good is not None:
        return good + draw(st.binary(min_size=1, max_size=20))
    if kind == "invalid_utf8":
        bad = draw(st.sampled_from(_INVALID_UTF8))
        # fixstr header, then the bad bytes, as a value or as a map key / tag
        text = bytes([0xA0 | len(bad)]) + bad
        shape = draw(st.sampled_from(["value", "key", "tag"]))
        if shape == "value":
            return text
        if shape == "key":
            return b"\x81" + text + b"\x01"
        return b"\x81\xa4type" + text
    if kind == "deep":
        depth = draw(st.integers(500, 5000))
        return (b"\x91" if draw(st.booleans()) else b"\x81\xa1k") * depth + b"\x01"
    if kind == "huge":
        return msgspec.msgpack.encode(draw(st.sampled_from(string.printable)) * 300_000)
    if kind == "float":
        value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308]))
        return msgspec.msgpack.encode({"type": value, "x": value})
    if kind == "unhashable":
        return b"\x81\xa4type\x92\x01\x02" if draw(st.booleans()) else b"\x81\x91\x01\x01"
    # bigint: a uint64 past int64, as a value and as a tag
    return b"\x81\xa4type\xcf\xff\xff\xff\xff\xff\xff\xff\xff"


@st.composite
def hostile_values(draw: st.DrawFn) -> Any:
    """Decoded-data shapes that break naive code: deep, huge, NaN, surrogates, odd types."""
    kind = draw(
        st.sampled_from(["deep_list", "deep_map", "nan", "surrogate", "huge", "bigint", "mixed"])
    )
    if kind == "deep_list":
        return deep(draw(st.integers(500, 3000)))
    if kind == "deep_map":
        return deep(draw(st.integers(500, 3000)), kind="map")
    if kind == "nan":
        return draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    if kind == "surrogate":
        return "a\ud800b"
    if kind == "huge":
        return "x" * 1_000_000
    if kind == "bigint":
        return draw(st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**40]))
    return draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists))
