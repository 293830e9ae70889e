"""One Retry-After parser: a valid wait (seconds or an HTTP-date) is capped; the rest is absent."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenroom.decide import RateLimited
from greenroom.decide._retry_after import MAX_RETRY_AFTER, parse_retry_after, retry_after
from tests._fuzz import FUZZ_SETTINGS, record

from ._hostile import hostile_retry_after

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


def clock() -> float:
    return NOW


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("99999999", MAX_RETRY_AFTER),  # capped
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),  # no zone: read as UTC
        ("Wed, 21 Oct 2015 08:28:30 +0100", 30.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: now
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
    ],
)
def test_a_valid_retry_after_is_seconds_within_the_cap(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=clock) == seconds


@pytest.mark.parametrize(
    "header",
    [
        *("nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0.5", "1e3", "1e309", "0x10"),
        *("", "   ", "soon", "1_000", "½", "٣", "1.", ".5", "+5", "5 s", "9" * 40),
        *("Wed, 32 Oct 2015 07:28:00 GMT", "Foo, 99 Bar 2015 07:28:00 GMT", "Wed, 21 Oct"),
        *("Wed, 21 Oct 2015 07:28:00 +9999", "\x00", "a\ud800b", "Wed, 21 Oct 2015 25:61:61 GMT"),
        "x" * 100_000,
    ],
)
def test_an_invalid_retry_after_counts_as_absent(header: str) -> None:
    assert parse_retry_after(header, now=clock) is None


def test_retry_after_ms_wins_when_valid_else_retry_after_is_read() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after-ms": "nan", "retry-after": "9"}) == 9.0
    assert retry_after({"retry-after-ms": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({"retry-after-ms": "9" * 12}) == MAX_RETRY_AFTER
    assert retry_after({}) is None


@pytest.mark.parametrize("wait", [float("nan"), float("inf"), -1.0, float("-inf")])
def test_rate_limited_refuses_a_wait_that_is_not_finite_seconds(wait: float) -> None:
    error = RateLimited("m", wait)
    assert error.retry_after is None
    assert "nan" not in str(error)
    assert "inf" not in str(error)


@FUZZ_SETTINGS
@given(header=hostile_retry_after(), name=st.sampled_from(["retry-after", "retry-after-ms"]))
def test_any_retry_after_is_absent_or_finite_seconds_within_the_cap(header: str, name: str) -> None:
    try:
        wait = retry_after({name: header}, now=clock)
    except Exception:
        record("retry-after", "escaped")
        raise
    if wait is None:
        record("retry-after", "typed")  # counted as absent
        return
    record("retry-after", "accepted")
    assert math.isfinite(wait)
    assert 0.0 <= wait <= MAX_RETRY_AFTER
    assert RateLimited("m", wait).retry_after == wait
