"""Supervisor flags and child specs are validated at construction, as OTP's ``supervisor`` does.

Modelled on ``supervisor_SUITE``'s ``sup_flags``, ``child_specs`` and the
significant-children cases: every bad value is an :class:`InvalidSpec` at the
line that built the spec, never a surprise at the first failure.
"""

from __future__ import annotations

import math

import pytest

import greenroom as gr


class Worker(gr.Actor):
    pass


WORKER = gr.ChildSpec(actor=Worker)
BAD_INTENSITY = [-1, 1.5, True, None, "3", math.inf]
BAD_PERIOD = [0, -1.0, math.nan, math.inf, None, True, "5"]


@pytest.mark.parametrize("intensity", BAD_INTENSITY)
def test_intensity_must_be_a_non_negative_int(intensity: object) -> None:
    with pytest.raises(gr.InvalidSpec, match="max_restarts"):
        gr.SupervisorSpec(id="s", max_restarts=intensity)  # type: ignore[arg-type]
    with pytest.raises(gr.InvalidSpec, match="max_restarts"):
        gr.PoolSpec(id="p", worker=WORKER, size=1, max_restarts=intensity)  # type: ignore[arg-type]


@pytest.mark.parametrize("period", BAD_PERIOD)
def test_period_must_be_a_positive_finite_number(period: object) -> None:
    with pytest.raises(gr.InvalidSpec, match="within"):
        gr.SupervisorSpec(id="s", within=period)  # type: ignore[arg-type]
    with pytest.raises(gr.InvalidSpec, match="within"):
        gr.PoolSpec(id="p", worker=WORKER, size=1, within=period)  # type: ignore[arg-type]


def test_zero_intensity_and_small_periods_are_valid() -> None:
    spec = gr.SupervisorSpec(id="s", max_restarts=0, within=0.001)
    assert (spec.max_restarts, spec.within) == (0, 0.001)


@pytest.mark.parametrize("shutdown", [math.nan, -1.0, None, True])
def test_shutdown_must_be_a_number_of_seconds_or_infinity(shutdown: object) -> None:
    with pytest.raises(gr.InvalidSpec, match="shutdown"):
        gr.ChildSpec(actor=Worker, shutdown=shutdown)  # type: ignore[arg-type]
    assert gr.SupervisorSpec(id="s", shutdown=math.inf).shutdown == math.inf  # OTP's infinity


@pytest.mark.parametrize("timeout", [math.nan, math.inf, 0, -2.0])
def test_handler_timeout_must_be_positive_and_finite(timeout: float) -> None:
    with pytest.raises(gr.InvalidSpec, match="handler_timeout"):
        gr.ChildSpec(actor=Worker, handler_timeout=timeout)


@pytest.mark.parametrize(
    ("field", "value"),
    [("initial", math.nan), ("maximum", math.nan), ("multiplier", math.inf), ("jitter", True)],
)
def test_backoff_refuses_nan_infinite_and_bool_values(field: str, value: float) -> None:
    with pytest.raises(gr.InvalidSpec, match=field):
        gr.Backoff(**{field: value})


@pytest.mark.parametrize("count", [True, 0, 2.0])
def test_counts_are_ints_not_bools(count: object) -> None:
    with pytest.raises(gr.InvalidSpec, match="throughput"):
        gr.ChildSpec(actor=Worker, throughput=count)  # type: ignore[arg-type]
    with pytest.raises(gr.InvalidSpec, match="max_attempts"):
        gr.RetryPolicy(max_attempts=count)  # type: ignore[arg-type]


def test_a_significant_child_must_not_be_permanent() -> None:
    with pytest.raises(gr.InvalidSpec, match="permanent"):
        gr.ChildSpec(actor=Worker, significant=True)


def test_significant_children_are_refused_when_auto_shutdown_is_never() -> None:
    child = gr.ChildSpec(actor=Worker, restart="transient", significant=True)
    with pytest.raises(gr.InvalidSpec, match="auto_shutdown='never'"):
        gr.SupervisorSpec(id="s", children=(child,))
    spec = gr.SupervisorSpec(id="s", children=(child,), auto_shutdown="any_significant")
    assert spec.children == (child,)


def test_a_pool_refuses_a_significant_worker() -> None:
    worker = gr.ChildSpec(actor=Worker, restart="temporary", significant=True)
    with pytest.raises(gr.InvalidSpec, match="significant"):
        gr.PoolSpec(id="p", worker=worker, size=1)


@pytest.mark.anyio
async def test_start_child_refuses_a_significant_child_under_auto_shutdown_never() -> None:
    async with gr.Runtime() as rt:
        sup = await rt.spawn(gr.SupervisorSpec(id="s"))
        child = gr.ChildSpec(actor=Worker, id="w", restart="transient", significant=True)
        with pytest.raises(gr.InvalidSpec, match="auto_shutdown='never'"):
            await sup.start_child(child)
        assert await sup.which_children() == []


@pytest.mark.parametrize("n", [1, 1024, 10_000])
def test_backoff_delay_stays_finite_however_long_the_restart_loop(n: int) -> None:
    # 2.0 ** 1024 overflows a float: a supervisor in a long restart loop
    # must get the maximum, not an OverflowError that kills it.
    assert gr.Backoff(initial=0.5, maximum=2.0, jitter=0.0).delay(n) == (0.5 if n == 1 else 2.0)
    assert gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0).delay(n) == 0.0


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"routing": "round_robin", "key": "user"}, "never reads it"),
        ({"routing": "consistent_hash", "key": "not an attribute"}, "attribute"),
        ({"routing": "consistent_hash", "key": 42}, "attribute name or a function"),
    ],
)
def test_a_pool_refuses_a_key_it_cannot_use(fields: dict[str, object], match: str) -> None:
    with pytest.raises(gr.InvalidSpec, match=match):
        gr.PoolSpec(id="p", worker=WORKER, size=1, **fields)  # type: ignore[arg-type]
    gr.PoolSpec(id="p", worker=WORKER, size=1, routing="consistent_hash", key="user.id")
    gr.PoolSpec(id="p", worker=WORKER, size=1, routing="consistent_hash", key=lambda m: m)


def test_a_pool_refuses_a_worker_that_is_not_a_child_spec() -> None:
    with pytest.raises(gr.InvalidSpec, match=r"PoolSpec\.worker"):
        gr.PoolSpec(id="p", worker=gr.SupervisorSpec(id="s"), size=1)  # type: ignore[arg-type]
