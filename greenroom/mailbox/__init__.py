"""Envelopes, the Mailbox protocol, the memory, sqlite and Redis mailboxes, and dead letters."""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.mailbox._config import MailboxConfig, Overflow
from greenroom.mailbox._deadletter import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSink,
    MemoryDeadLetters,
)
from greenroom.mailbox._envelope import Envelope, IdempotencyKey, keyed_id, make_envelope
from greenroom.mailbox._errors import (
    EnvelopeIdConflict,
    MailboxCloseIncomplete,
    MailboxCorrupted,
    MailboxUnavailable,
    UndecodableMessage,
)
from greenroom.mailbox._memory import MemoryMailbox, MemoryMailboxes
from greenroom.mailbox._message import Message, Request, check_message, fixed_size
from greenroom.mailbox._protocol import Mailbox, MailboxFactory, MailboxStatistics
from greenroom.mailbox._redis_admin import (
    RedisDeadLetterRecord,
    RedisDeadLetters,
    RedisRedriveOutcome,
)
from greenroom.mailbox._redis_deadletters import RedisDeadLetterSink
from greenroom.mailbox._redis_mailbox import RedisMailbox
from greenroom.mailbox._redis_mailbox_factory import RedisMailboxes
from greenroom.mailbox._sqlite import SqliteMailboxes, SqliteMailboxesStatistics
from greenroom.mailbox._sqlite_admin import DeadLetterRecord, RedriveOutcome
from greenroom.mailbox._sqlite_deadletters import SqliteDeadLetters
from greenroom.mailbox._sqlite_mailbox import SqliteMailbox

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterRecord",
    "DeadLetterSink",
    "Envelope",
    "EnvelopeIdConflict",
    "IdempotencyKey",
    "Mailbox",
    "MailboxCloseIncomplete",
    "MailboxConfig",
    "MailboxCorrupted",
    "MailboxFactory",
    "MailboxStatistics",
    "MailboxUnavailable",
    "MemoryDeadLetters",
    "MemoryMailbox",
    "MemoryMailboxes",
    "Message",
    "Overflow",
    "RedisDeadLetterRecord",
    "RedisDeadLetterSink",
    "RedisDeadLetters",
    "RedisMailbox",
    "RedisMailboxes",
    "RedisRedriveOutcome",
    "RedriveOutcome",
    "Request",
    "SqliteDeadLetters",
    "SqliteMailbox",
    "SqliteMailboxes",
    "SqliteMailboxesStatistics",
    "UndecodableMessage",
    "check_message",
    "fixed_size",
    "keyed_id",
    "make_envelope",
]

_publish_errors(__name__, globals())
