"""Supervision as data: child, pool and supervisor specs, retry and backoff policies.

Every spec is a frozen, keyword-only msgspec Struct, validated when it is
built, so a bad spec is a clear :class:`InvalidSpec` at the line that made it,
not a surprise at the first failure. Times are in seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

import msgspec

from greenroom._errors import InvalidSpec, NotRetryable, UsageError
from greenroom.mailbox import MailboxConfig

if TYPE_CHECKING:
    from greenroom.actors._actor import Actor

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildSpec",
    "PoolSpec",
    "Restart",
    "RetryPolicy",
    "Routing",
    "Shutdown",
    "Spec",
    "Strategy",
    "SupervisorSpec",
    "as_spec",
]

Restart = Literal["permanent", "transient", "temporary"]
"""When a child is restarted: ``permanent`` always; ``transient`` only after a
failure (not after it stopped itself); ``temporary`` never (it is removed)."""

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""Which children restart with a failed one: only it; all of them; it and
those started after it."""

Routing = Literal["round_robin", "least_loaded", "consistent_hash"]

Shutdown = float | Literal["brutal_kill"]
"""How a child is stopped (OTP's ``shutdown``): seconds of grace for its current
handler and ``on_stop`` together, then it is cancelled (``math.inf``: no limit;
``0``: cancel the handler at once, then run ``on_stop`` until its first wait);
or ``"brutal_kill"``: cancel at once, skip ``on_stop``, kill its children too."""

AutoShutdown = Literal["never", "any_significant", "all_significant"]


def _one_of(owner: str, field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidSpec(f"{owner}.{field} must be one of {choices}, got {value!r}")


def _positive(
    owner: str,
    field: str,
    value: float | None,
    *,
    allow_zero: bool = False,
    allow_none: bool = True,
    finite: bool = False,
) -> None:
    if value is None and allow_none:
        return
    bound = ">= 0" if allow_zero else "> 0"
    if finite:
        bound += " and finite"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
        or (value == 0 and not allow_zero)
        or (finite and math.isinf(value))
    ):
        none = " or None" if allow_none else ""
        raise InvalidSpec(f"{owner}.{field} must be a number {bound}{none}, got {value!r}")


def _count(owner: str, field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSpec(f"{owner}.{field} must be an int >= {minimum}, got {value!r}")


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with proportional jitter.

    The n-th delay (n from 1) is ``min(maximum, initial * multiplier**(n-1))``,
    scaled by a random factor in ``[1 - jitter, 1 + jitter]`` so that many
    restarting children do not retry in lock step.

    Attributes:
        initial: first delay, seconds (default 0.01).
        multiplier: growth per step (default 2.0).
        maximum: the largest delay, seconds (default 1.0).
        jitter: relative spread, 0 to 1 (default 0.2).
    """

    initial: float = 0.01
    multiplier: float = 2.0
    maximum: float = 1.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for field in ("initial", "maximum"):
            _positive("Backoff", field, getattr(self, field), allow_zero=True, allow_none=False)
        multiplier = self.multiplier
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, int | float)
            or not 1 <= multiplier < math.inf
        ):
            raise InvalidSpec(f"Backoff.multiplier must be >= 1 and finite, got {multiplier!r}")
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise InvalidSpec(f"Backoff.jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, n: int) -> float:
        """The delay before the ``n``-th try (``n >= 1``), jitter applied."""
        if self.initial == 0:
            base = 0.0
        else:
            try:
                grown = self.initial * self.multiplier ** max(0, n - 1)
            except OverflowError:  # a long restart loop: 2.0 ** 1024 is past a float
                grown = math.inf
            base = min(self.maximum, grown)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


NO_BACKOFF = Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often a message whose handler raised is tried before it is a dead letter.

    Attributes:
        max_attempts: tries in all, the first included (default 3; 1 means
            no retry).
        backoff: delay before each retry (default :class:`Backoff` defaults).
        retry_on: exception types that are retried (default ``(Exception,)``);
            any other failure is dead-lettered at once.
    """

    max_attempts: int = 3
    backoff: Backoff = Backoff()
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        _count("RetryPolicy", "max_attempts", self.max_attempts, 1)
        for exc_type in self.retry_on:
            if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
                raise InvalidSpec(f"RetryPolicy.retry_on holds {exc_type!r}, not an Exception type")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether a message that failed on ``attempt`` with ``error`` is tried again.

        A :class:`UsageError` (a mistake in the code, such as a contract
        violation) or a :class:`NotRetryable` failure is never retried: it
        would fail the same way.
        """
        return (
            attempt < self.max_attempts
            and isinstance(error, self.retry_on)
            and not isinstance(error, UsageError | NotRetryable)
        )


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One supervised actor.

    Attributes:
        actor: the :class:`~greenroom.Actor` subclass to run.
        id: unique among its siblings; also the last part of its name
            (default: the class name in lower case).
        args: positional arguments for the actor's constructor.
        kwargs: keyword arguments for the actor's constructor.
        restart: ``"permanent"`` (default), ``"transient"`` or ``"temporary"``.
        shutdown: how it is stopped, see :data:`Shutdown` (default 5.0
            seconds, OTP's default for a worker).
        significant: whether its exit shuts its supervisor down (see
            ``SupervisorSpec.auto_shutdown``); only for transient or
            temporary children.
        mailbox: its mailbox's bound and overflow behaviour.
        retry: how a message whose handler raised is retried.
        handler_timeout: seconds one handler may run before it is cancelled
            and counted as a failure (default ``None``: no limit).
        throughput: messages handled before the actor yields to others
            (default 64); lower is fairer, higher is faster.
    """

    actor: type[Actor]
    id: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = msgspec.field(default_factory=dict)
    restart: Restart = "permanent"
    shutdown: Shutdown = 5.0
    significant: bool = False
    mailbox: MailboxConfig = MailboxConfig()
    retry: RetryPolicy = RetryPolicy()
    handler_timeout: float | None = None
    throughput: int = 64

    def __post_init__(self) -> None:
        from greenroom.actors._actor import Actor

        if not (isinstance(self.actor, type) and issubclass(self.actor, Actor)):
            raise InvalidSpec(f"ChildSpec.actor must be an Actor subclass, got {self.actor!r}")
        _check_common("ChildSpec", self.id, self.restart, self.shutdown, self.significant)
        _positive("ChildSpec", "handler_timeout", self.handler_timeout, finite=True)
        _count("ChildSpec", "throughput", self.throughput, 1)
        if not isinstance(self.args, tuple):
            raise InvalidSpec(f"ChildSpec.args must be a tuple, got {type(self.args).__name__}")

    @property
    def child_id(self) -> str:
        """The id, defaulted from the actor class."""
        return self.id or self.actor.__name__.lower()


class PoolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A pool of identical workers behind one ref, each supervised one-for-one.

    Attributes:
        id: unique among its siblings.
        worker: the spec every worker is started from (its ``id`` is ignored:
            workers are named ``<pool>/<n>``).
        size: workers to start (0 is allowed: grow it with ``resize``).
        routing: ``"round_robin"`` (default), ``"least_loaded"`` (shortest
            mailbox) or ``"consistent_hash"`` (one key keeps one worker, and
            so its order, for as long as the pool's size is unchanged).
        key: for consistent hashing (and only then), the message attribute
            (an identifier) or a function of the message that gives its key.
        max_restarts, within: restart intensity of the pool's supervisor.
        restart: how the pool itself is restarted by its parent.
        shutdown: how the pool is stopped (default ``math.inf``: it waits for
            its workers, each within its own ``worker.shutdown``, as OTP's
            default for a supervisor child).
        significant: as for :class:`ChildSpec`.

    A pool runs only specs it can route to: ``worker`` is a
    :class:`ChildSpec` (not a supervisor or pool), never significant.
    """

    id: str
    worker: ChildSpec
    size: int
    routing: Routing = "round_robin"
    key: str | Callable[[Any], object] | None = None
    max_restarts: int = 10
    within: float = 10.0
    restart: Restart = "permanent"
    shutdown: Shutdown = math.inf
    significant: bool = False

    def __post_init__(self) -> None:
        _check_common("PoolSpec", self.id, self.restart, self.shutdown, self.significant)
        if not isinstance(self.worker, ChildSpec):
            raise InvalidSpec(f"PoolSpec.worker must be a ChildSpec, got {self.worker!r}")
        _count("PoolSpec", "size", self.size, 0)
        if self.worker.significant:
            raise InvalidSpec(
                "PoolSpec.worker is significant; a pool's workers are dynamic children and "
                "cannot shut the pool down (mark the pool itself significant instead)"
            )
        _one_of("PoolSpec", "routing", self.routing, get_args(Routing))
        if self.routing == "consistent_hash" and self.key is None:
            raise InvalidSpec(
                "PoolSpec.routing='consistent_hash' needs key=: a message attribute name "
                "or a function of the message"
            )
        if self.routing != "consistent_hash" and self.key is not None:
            raise InvalidSpec(
                f"PoolSpec.key is given but routing={self.routing!r} never reads it; "
                "use routing='consistent_hash' or drop the key"
            )
        key = self.key
        if isinstance(key, str):
            if not all(part.isidentifier() for part in key.split(".")):
                raise InvalidSpec(
                    f"PoolSpec.key must name a message attribute (like 'user_id'), got {key!r}"
                )
        elif key is not None and not callable(key):
            raise InvalidSpec(f"PoolSpec.key must be an attribute name or a function, got {key!r}")
        _check_intensity("PoolSpec", self.max_restarts, self.within)

    @property
    def child_id(self) -> str:
        """The pool's id."""
        return self.id


class SupervisorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A supervisor and the children it starts, in order.

    Attributes:
        id: unique among its siblings.
        children: specs started in this order, stopped in reverse order.
        strategy: ``"one_for_one"`` (default), ``"one_for_all"`` or
            ``"rest_for_one"``.
        max_restarts: restarts allowed within ``within`` seconds (default 10);
            one more and the supervisor stops its children and fails,
            escalating to its own supervisor.
        within: the intensity window in seconds (default 10.0), measured on
            a monotonic clock.
        backoff: delay before a restart, growing with the restarts in the window.
        auto_shutdown: ``"never"`` (default), ``"any_significant"`` or
            ``"all_significant"``: when significant children exiting shut
            this supervisor down.
        mailbox_kind: the mailbox kind of the actors in this subtree that
            name none (default ``None``: the parent's).
        shutdown: how it is stopped (default ``math.inf``: it waits for its
            subtree, each child within its own ``shutdown``, OTP's default for
            a supervisor child); a finite time bounds the whole subtree.
        restart, significant: as for :class:`ChildSpec`.
    """

    id: str
    children: tuple[Spec, ...] = ()
    strategy: Strategy = "one_for_one"
    max_restarts: int = 10
    within: float = 10.0
    backoff: Backoff = Backoff()
    auto_shutdown: AutoShutdown = "never"
    mailbox_kind: str | None = None
    restart: Restart = "permanent"
    shutdown: Shutdown = math.inf
    significant: bool = False

    def __post_init__(self) -> None:
        _check_common("SupervisorSpec", self.id, self.restart, self.shutdown, self.significant)
        _one_of("SupervisorSpec", "strategy", self.strategy, get_args(Strategy))
        _one_of("SupervisorSpec", "auto_shutdown", self.auto_shutdown, get_args(AutoShutdown))
        _check_intensity("SupervisorSpec", self.max_restarts, self.within)
        if not isinstance(self.children, tuple):
            raise InvalidSpec("SupervisorSpec.children must be a tuple of specs")
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec | PoolSpec | SupervisorSpec):
                raise InvalidSpec(
                    f"SupervisorSpec {self.id!r} has a child that is not a spec: {child!r}"
                )
            if child.child_id in seen:
                raise InvalidSpec(
                    f"SupervisorSpec {self.id!r} has two children with id {child.child_id!r}; "
                    "ids must be unique among siblings"
                )
            seen.add(child.child_id)
            if child.significant and self.auto_shutdown == "never":
                raise InvalidSpec(
                    f"SupervisorSpec {self.id!r} has a significant child {child.child_id!r} "
                    "but auto_shutdown='never'; significant children need "
                    "auto_shutdown='any_significant' or 'all_significant' (as in OTP)"
                )

    @property
    def child_id(self) -> str:
        """The supervisor's id."""
        return self.id


Spec = ChildSpec | PoolSpec | SupervisorSpec
"""Anything a supervisor can start."""


def _check_common(owner: str, cid: str | None, restart: str, shutdown: Shutdown, sig: bool) -> None:
    if cid is not None and (not isinstance(cid, str) or not cid or "/" in cid):
        raise InvalidSpec(f"{owner}.id must be a non-empty str without '/', got {cid!r}")
    _one_of(owner, "restart", restart, get_args(Restart))
    # inf is OTP's `infinity` (wait as long as the child takes); NaN and None are refused
    if isinstance(shutdown, str):
        if shutdown != "brutal_kill":
            raise InvalidSpec(
                f"{owner}.shutdown must be seconds >= 0 (math.inf: no limit) or "
                f"'brutal_kill', got {shutdown!r}"
            )
    else:
        _positive(owner, "shutdown", shutdown, allow_zero=True, allow_none=False)
    if not isinstance(sig, bool):
        raise InvalidSpec(f"{owner}.significant must be a bool, got {sig!r}")
    if sig and restart == "permanent":
        raise InvalidSpec(
            f"{owner} is significant but permanent; a significant child must be "
            "transient or temporary (as in OTP)"
        )


def _check_intensity(owner: str, max_restarts: int, within: float) -> None:
    _count(owner, "max_restarts", max_restarts, 0)
    _positive(owner, "within", within, allow_none=False, finite=True)


def as_spec(
    actor: type[Actor] | Spec,
    *,
    name: str | None = None,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    mailbox: MailboxConfig | None = None,
    restart: Restart = "permanent",
    retry: RetryPolicy | None = None,
    handler_timeout: float | None = None,
) -> Spec:
    """A spec for ``actor``: the spec itself, or a :class:`ChildSpec` built from the options.

    Raises:
        InvalidSpec: ``name`` contradicts the given spec's id, or an option is invalid.
    """
    if isinstance(actor, ChildSpec | PoolSpec | SupervisorSpec):
        if name is not None and name != actor.child_id:
            raise InvalidSpec(f"name={name!r} given with a spec whose id is {actor.child_id!r}")
        return actor
    if (
        name is None
        and not args
        and not kwargs
        and mailbox is None
        and restart == "permanent"
        and retry is None
        and handler_timeout is None
    ):
        # The plain spawn of a class: one spec per class, shared, as a
        # supervisor keeps it (the child's id lives beside it).
        default = actor.__dict__.get("_gr_spec")
        if default is None:
            default = ChildSpec(actor=actor)
            actor._gr_spec = default  # type: ignore[attr-defined]
        return default
    return ChildSpec(
        actor=actor,
        id=name,
        args=args,
        kwargs=dict(kwargs or {}),
        mailbox=_MAILBOX if mailbox is None else mailbox,
        restart=restart,
        retry=_RETRY if retry is None else retry,
        handler_timeout=handler_timeout,
    )


_MAILBOX = MailboxConfig()
_RETRY = RetryPolicy()
