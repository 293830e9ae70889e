"""The one error tree of greenroom.

Every exception greenroom raises derives from :class:`GreenroomError`. Caller
mistakes (a bad spec, a body that is not a message) are kept apart from
runtime failures (a timeout, a dead actor, a full mailbox)::

    GreenroomError
    ├── UsageError                 a mistake in the calling code; fix the code
    │   ├── InvalidSpec            a child / pool / supervisor spec that cannot work
    │   │   ├── ChildAlreadyStarted    start_child with the id of a running child
    │   │   ├── ChildAlreadyPresent    start_child with the id of a stopped child's kept spec
    │   │   ├── ChildNotFound          a child admin call naming no child of that supervisor
    │   │   └── ChildRunning           restart_child / delete_child of a running or restarting child
    │   ├── InvalidMessage         a body that is not a frozen, tagged msgspec Struct
    │   └── NameTaken              spawn with a name already registered
    └── RuntimeFailure             something happened while running; handle or retry
        ├── AskTimeout             no reply within the ask's timeout (also a TimeoutError)
        ├── ActorStopped           the actor is gone, or stopped with the ask pending
        ├── HandlerError           the handler failed past its retry policy
        ├── HandlerTimeout         a handler ran past its deadline (a failure, retried)
        ├── UnknownMessage         the actor has no handler for the message's type
        ├── MessageTooLarge        the encoded message is over the size limit
        ├── MailboxFull            a fail-fast mailbox is at its bound
        ├── MailboxClosed          the mailbox no longer accepts messages
        ├── ChildStartFailed       a child's start (``on_start``) raised
        └── Escalated              a supervisor passed its restart intensity

The store adds its own under these two (``greenroom.store``):
``ContractViolation``, ``InvalidScope``, ``InvalidKey``, ``InvalidValue``
(usage errors) and ``VersionConflict``, ``StoredValueInvalid``,
``StoreClosed``, ``StoreUnavailable`` (runtime failures).

A runtime failure that retrying the same message cannot fix (a request past
its budget) also derives from the :class:`NotRetryable` mixin; a
``RetryPolicy`` never retries it, nor any ``UsageError``.

Each error keeps the facts of its message as attributes, so code can act on
them without parsing text, and each can be rebuilt from :meth:`GreenroomError.to_info`
on the other side of a mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import msgspec

from greenroom._secrets import redact_text

__all__ = [
    "ActorStopped",
    "AskTimeout",
    "ChildAlreadyPresent",
    "ChildAlreadyStarted",
    "ChildNotFound",
    "ChildRunning",
    "ChildStartFailed",
    "ErrorInfo",
    "Escalated",
    "GreenroomError",
    "HandlerError",
    "HandlerTimeout",
    "InvalidMessage",
    "InvalidSpec",
    "MailboxClosed",
    "MailboxFull",
    "MessageTooLarge",
    "NameTaken",
    "NotRetryable",
    "RuntimeFailure",
    "UnknownMessage",
    "UsageError",
    "publish_errors",
]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A failure as plain data: what crosses a mailbox or lands in a dead letter.

    ``type`` is the exception's qualified class name, ``message`` its text and
    ``traceback`` the formatted traceback where one was captured.

    ``message`` and ``traceback`` are redacted whenever an ``ErrorInfo`` is
    made, built from an exception, constructed or decoded: every secret known
    to the process (a ``Secret``, a registered text, a configured credential)
    and every ``Bearer ...`` credential is replaced by ``[redacted]``. So no
    dead letter (sqlite or Redis), trace, remote reply or ledger entry holds
    one; see ``greenroom.trace`` for how a text becomes known.
    """

    type: str
    message: str
    traceback: str | None = None

    def __post_init__(self) -> None:
        # Every way of making one passes here (construction, from_exception,
        # msgpack/JSON decoding), so redaction cannot be forgotten at a call site.
        if type(self.message) is str:
            message = redact_text(self.message)
            if message is not self.message:
                msgspec.structs.force_setattr(self, "message", message)
        if type(self.traceback) is str:
            tb = redact_text(self.traceback)
            if tb is not self.traceback:
                msgspec.structs.force_setattr(self, "traceback", tb)

    @classmethod
    def from_exception(cls, error: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
        """Describe ``error``; the traceback is formatted only when asked for."""
        tb: str | None = None
        if with_traceback and error.__traceback__ is not None:
            import traceback

            tb = "".join(traceback.format_exception(error))
        return cls(type=_qualname(type(error)), message=str(error), traceback=tb)


def _qualname(cls: type) -> str:
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("greenroom."):
        module = "greenroom"
    return f"{module}.{cls.__qualname__}"


class GreenroomError(Exception):
    """The root of every error greenroom raises."""

    def to_info(self) -> ErrorInfo:
        """This error as plain data that survives msgpack."""
        return ErrorInfo.from_exception(self, with_traceback=False)


class NotRetryable:
    """Mixin of the failures that a retry of the same message cannot fix.

    ``RetryPolicy`` dead-letters them on the first attempt, whatever its
    ``retry_on``; the actor is still restarted per its supervisor.
    """


class UsageError(GreenroomError):
    """A mistake in the calling code: retrying will not help, changing the code will."""


class InvalidSpec(UsageError):
    """A child, pool or supervisor spec that cannot work, found when it is built."""


class ChildAlreadyStarted(InvalidSpec):
    """``start_child`` named the id of a child that is running (OTP's ``already_started``).

    ``ref`` is the running child's ref.
    """

    def __init__(self, supervisor: str, child: str, ref: object) -> None:
        super().__init__(
            f"{supervisor} has a running child with id {child!r} already; ids are unique "
            "among siblings (give the new child another id, or terminate_child the old one)"
        )
        self.supervisor = supervisor
        self.child = child
        self.ref = ref


class ChildAlreadyPresent(InvalidSpec):
    """``start_child`` named the id of a stopped child whose spec is kept (OTP's
    ``already_present``): ``restart_child`` it, or ``delete_child`` it first."""

    def __init__(self, supervisor: str, child: str) -> None:
        super().__init__(
            f"{supervisor} keeps the spec of a stopped child with id {child!r}; "
            "restart_child it, or delete_child it before starting a new one"
        )
        self.supervisor = supervisor
        self.child = child


class ChildNotFound(InvalidSpec):
    """A child admin call named an id the supervisor has no child of (OTP's ``not_found``)."""

    def __init__(self, supervisor: str, child: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"{supervisor} has no child {child!r}; it has: {', '.join(known) or 'none'}"
        )
        self.supervisor = supervisor
        self.child = child
        self.known = known


class ChildRunning(InvalidSpec):
    """``restart_child`` or ``delete_child`` of a child that is running or restarting
    (OTP's ``running`` / ``restarting``); ``status`` says which."""

    def __init__(self, supervisor: str, child: str, status: str, remedy: str) -> None:
        super().__init__(f"child {child!r} of {supervisor} is {status}; {remedy}")
        self.supervisor = supervisor
        self.child = child
        self.status = status


class InvalidMessage(UsageError):
    """A message body that is not a frozen, tagged :class:`greenroom.Message`."""

    def __init__(self, body_type: str, reason: str) -> None:
        super().__init__(
            f"{body_type} cannot be sent: {reason}; "
            "define messages as `class MyMsg(greenroom.Message): ...`"
        )
        self.body_type = body_type
        self.reason = reason


class NameTaken(UsageError):
    """An actor name is registered already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an actor named {name!r} is running already; names are unique")
        self.name = name


class RuntimeFailure(GreenroomError):
    """Something failed while the system ran: handle it, retry it or report it."""


class AskTimeout(RuntimeFailure, TimeoutError):
    """No reply arrived within the ask's timeout. A reply that arrives later is dropped."""

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        super().__init__(
            f"{actor} did not answer {message_type} within {timeout:g} s; "
            "raise the timeout or look at the actor's trace"
        )
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout


class ActorStopped(RuntimeFailure):
    """The actor is gone, or stopped while a message to it was pending."""

    def __init__(self, actor: str, message_type: str | None = None) -> None:
        what = f" before answering {message_type}" if message_type else ""
        super().__init__(f"{actor} is stopped{what}")
        self.actor = actor
        self.message_type = message_type


class HandlerError(RuntimeFailure):
    """A handler failed on every attempt its retry policy allowed.

    ``error_type`` and ``error_message`` describe the last failure; the
    original exception is chained as ``__cause__`` when it was raised in this
    process.
    """

    def __init__(self, actor: str, message_type: str, error: ErrorInfo, attempts: int) -> None:
        super().__init__(
            f"{actor} failed to handle {message_type} after {attempts} attempt(s): "
            f"{error.type}: {error.message}"
        )
        self.actor = actor
        self.message_type = message_type
        self.error_type = error.type
        self.error_message = error.message
        self.attempts = attempts


class UnknownMessage(RuntimeFailure):
    """The receiving actor has no handler for this message type."""

    def __init__(self, actor: str, message_type: str, accepted: tuple[str, ...]) -> None:
        super().__init__(
            f"{actor} has no handler for {message_type}; it accepts: "
            f"{', '.join(accepted) or 'nothing'}"
        )
        self.actor = actor
        self.message_type = message_type
        self.accepted = accepted


class MessageTooLarge(RuntimeFailure):
    """The encoded message is larger than the configured limit."""

    def __init__(self, message_type: str, size: int, limit: int) -> None:
        super().__init__(
            f"{message_type} encodes to {size} bytes, over the limit of {limit}; "
            "send a reference (a store key) instead of the payload, or raise max_message_bytes"
        )
        self.message_type = message_type
        self.size = size
        self.limit = limit


class MailboxFull(RuntimeFailure):
    """A fail-fast mailbox is at its bound."""

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(
            f"the mailbox of {actor} is full ({capacity} messages); "
            "slow the sender, raise the capacity, or use overflow='wait'"
        )
        self.actor = actor
        self.capacity = capacity


class MailboxClosed(RuntimeFailure):
    """The mailbox no longer accepts messages (its actor is stopping or stopped)."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"the mailbox of {actor} is closed")
        self.actor = actor


class ChildStartFailed(RuntimeFailure):
    """A child's start raised; the children started before it were stopped again."""

    def __init__(self, child: str, error: ErrorInfo) -> None:
        super().__init__(f"child {child} failed to start: {error.type}: {error.message}")
        self.child = child
        self.error_type = error.type
        self.error_message = error.message


class Escalated(RuntimeFailure):
    """A supervisor passed its restart intensity, stopped its children and gave up."""

    def __init__(self, supervisor: str, restarts: int, period: float, last: ErrorInfo) -> None:
        super().__init__(
            f"{supervisor} gave up after {restarts} restarts within {period:g} s; "
            f"last failure: {last.type}: {last.message}"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period
        self.last_error_type = last.type
        self.last_error_message = last.message


class HandlerTimeout(RuntimeFailure):
    """A handler ran past its deadline and was cancelled; it counts as a failure."""

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        super().__init__(
            f"{actor} took longer than {timeout:g} s to handle {message_type} and was cancelled; "
            "raise ChildSpec.handler_timeout or make the handler faster"
        )
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout


def publish_errors(module: str, namespace: Mapping[str, object]) -> None:
    """Name the exceptions a public module exports after that module, as trio does.

    Called at the end of each public ``__init__`` with its ``globals()``:
    every exception class in its ``__all__`` that lives in a private module
    (a path with an ``_`` component) gets ``__module__ = module``, so a
    traceback reads ``greenroom.AskTimeout: ...``, not
    ``greenroom._errors.AskTimeout``. ``greenroom`` runs last, so a name it
    re-exports shows its shortest public path. Only exceptions: renaming a
    msgspec Struct's module would change where its string annotations are
    resolved.
    """
    for name in cast("Iterable[str]", namespace.get("__all__", ())):
        value = namespace.get(name)
        if not (isinstance(value, type) and issubclass(value, BaseException)):
            continue
        current = value.__module__
        if not current.startswith("greenroom"):
            continue
        private = any(part.startswith("_") for part in current.split("."))
        if private or len(module) < len(current):
            value.__module__ = module
