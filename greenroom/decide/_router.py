"""A decider over several models: the primary first, then each fallback in turn."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import anyio
import msgspec

from greenroom._errors import ErrorInfo
from greenroom.decide._context import Context
from greenroom.decide._decider import Decider
from greenroom.decide._decision import DecisionResult, Failure
from greenroom.decide._errors import (
    AllModelsFailed,
    BudgetExceeded,
    DeciderFailed,
    InvalidDeciderConfig,
    ModelError,
    RateLimited,
)
from greenroom.trace._logging import logger

__all__ = ["FallbackRouter"]


class FallbackRouter:
    """Tries its deciders in order; the first usable answer wins.

    Rules:

    * Any :class:`ModelError` (an error status, a failed connection, a
      timeout, a rate limit, invalid output) moves to the next decider.
    * So does any other ``Exception`` a decider raises, and an answer that
      is not a :class:`DecisionResult`: each counts as that decider's
      failure, a :class:`DeciderFailed` chained to what it raised. Only
      :class:`BudgetExceeded` passes through (the request is over, not
      the model), and cancellation is never caught.
    * A decider answered HTTP 429 with a ``Retry-After`` is *cooling down*
      until that time has passed (capped at ``max_retry_wait``): it is
      skipped while another can be tried. A wait that is not a finite
      number of seconds > 0 (NaN, an infinity) sets no cool-down.
    * When every decider is cooling down, the router waits until the
      earliest cool-down ends (so at most ``max_retry_wait`` seconds) and
      tries the ready ones again, in order.
    * The result records who answered (``DecisionResult.model``) and every
      decider tried or skipped before it (``DecisionResult.failures``).

    Args:
        deciders: the primary first, then the fallbacks; names must differ.
        max_retry_wait: the longest a ``Retry-After`` is honoured, in
            seconds (default 30.0); a longer one is cut to this.
        name: the router's name, for errors (default ``"router"``).
        clock: the monotonic clock cool-downs are measured on.

    Raises:
        InvalidDeciderConfig: no deciders, names that repeat, or a negative
            ``max_retry_wait``.
    """

    def __init__(
        self,
        deciders: Sequence[Decider],
        *,
        max_retry_wait: float = 30.0,
        name: str = "router",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [d.name for d in deciders]
        if not names:
            raise InvalidDeciderConfig("FallbackRouter", "no deciders", "pass at least one")
        if len(set(names)) != len(names):
            raise InvalidDeciderConfig(
                "FallbackRouter",
                f"decider names repeat: {names}",
                "give each decider (each ModelConfig.model) a distinct name",
            )
        if not max_retry_wait >= 0:
            raise InvalidDeciderConfig(
                "FallbackRouter.max_retry_wait",
                f"expected seconds >= 0, got {max_retry_wait!r}",
                "pass seconds >= 0",
            )
        self._deciders = tuple(deciders)
        self._max_wait = max_retry_wait
        self._name = name
        self._clock = clock
        self._cooling_until: dict[str, float] = {}

    @property
    def name(self) -> str:
        """The router's name (results record the model that answered, not this)."""
        return self._name

    def cooling_down(self) -> dict[str, float]:
        """Seconds each cooling-down decider has left, by name."""
        now = self._clock()
        return {n: until - now for n, until in self._cooling_until.items() if until > now}

    async def decide(self, context: Context) -> DecisionResult:
        """The first usable answer of the deciders, tried in order.

        Raises:
            AllModelsFailed: every decider failed or was cooling down; the
                last failure is chained as ``__cause__``.
            BudgetExceeded: a decider raised it (passed through as it is).
        """
        failures: list[Failure] = []
        last: ModelError | None = None
        ready = self._ready(failures)
        if not ready:
            earliest = min(self._cooling_until.values())
            await anyio.sleep(max(earliest - self._clock(), 0.0))
            failures.clear()
            ready = self._ready(failures)
        for decider in ready:
            try:
                result: object = await decider.decide(context)  # checked: a decider may lie
            except BudgetExceeded:
                raise
            except ModelError as e:
                last = e
            except Exception as e:  # a decider's bug is its model's failure: fall back
                last = DeciderFailed.wrapping(decider.name, e)
                last.__cause__ = e
            else:
                if isinstance(result, DecisionResult):
                    self._cooling_until.pop(decider.name, None)
                    return msgspec.structs.replace(result, failures=(*failures, *result.failures))
                last = DeciderFailed(
                    decider.name,
                    "TypeError",
                    f"decide() returned {type(result).__qualname__}, expected a DecisionResult",
                )
            self._failed(decider.name, last, failures)
        attempts = tuple((f.model, f.error) for f in failures)
        raise AllModelsFailed(self._name, attempts) from last

    def _failed(self, name: str, error: ModelError, failures: list[Failure]) -> None:
        failures.append(Failure(model=name, error=error.to_info()))
        if isinstance(error, RateLimited):
            wait = error.retry_after
            if wait is not None and math.isfinite(wait) and wait > 0:
                self._cooling_until[name] = self._clock() + min(wait, self._max_wait)
        logger.bind(event="model_fallback", router=self._name, model=name).debug(
            "{router}: {model} failed, trying the next: {error}",
            router=self._name,
            model=name,
            error=error,
        )

    def _ready(self, failures: list[Failure]) -> list[Decider]:
        now = self._clock()
        ready: list[Decider] = []
        for decider in self._deciders:
            until = self._cooling_until.get(decider.name)
            if until is None or until <= now:
                ready.append(decider)
                continue
            error = ErrorInfo(
                type="greenroom.RateLimited",
                message=f"skipped: cooling down after a rate limit, {until - now:.3g} s left",
            )
            failures.append(Failure(model=decider.name, error=error))
        return ready
