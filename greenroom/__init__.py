"""greenroom: an embeddable async actor runtime for supervised LLM agent systems.

Everything a user imports is here; subpackages hold the same names by layer.
greenroom logs through loguru and is disabled until the application calls
``loguru.logger.enable("greenroom")``.
"""

from loguru import logger as _logger

from greenroom._errors import (
    ActorStopped,
    AskTimeout,
    ChildStartFailed,
    ErrorInfo,
    Escalated,
    GreenroomError,
    HandlerError,
    HandlerTimeout,
    InvalidMessage,
    InvalidSpec,
    MailboxClosed,
    MailboxFull,
    MessageTooLarge,
    NameTaken,
    RuntimeFailure,
    UnknownMessage,
    UsageError,
)
from greenroom.actors import (
    IGNORE,
    Actor,
    ActorContext,
    ActorRef,
    Backoff,
    ChildInfo,
    ChildSpec,
    PoolRef,
    PoolSpec,
    RetryPolicy,
    Runtime,
    RuntimeConfig,
    RuntimeStatistics,
    SupervisorRef,
    SupervisorSpec,
    Timer,
    handler,
    run,
    serve,
)
from greenroom.mailbox import (
    DeadLetter,
    Envelope,
    MailboxConfig,
    MailboxStatistics,
    MemoryDeadLetters,
    Message,
)

_logger.disable("greenroom")

__all__ = [
    "IGNORE",
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "ChildStartFailed",
    "DeadLetter",
    "Envelope",
    "ErrorInfo",
    "Escalated",
    "GreenroomError",
    "HandlerError",
    "HandlerTimeout",
    "InvalidMessage",
    "InvalidSpec",
    "MailboxClosed",
    "MailboxConfig",
    "MailboxFull",
    "MailboxStatistics",
    "MemoryDeadLetters",
    "Message",
    "MessageTooLarge",
    "NameTaken",
    "PoolRef",
    "PoolSpec",
    "RetryPolicy",
    "Runtime",
    "RuntimeConfig",
    "RuntimeFailure",
    "RuntimeStatistics",
    "SupervisorRef",
    "SupervisorSpec",
    "Timer",
    "UnknownMessage",
    "UsageError",
    "handler",
    "run",
    "serve",
]
