"""Envelopes, the Mailbox protocol, the memory mailbox and dead letters."""

from greenroom.mailbox._config import MailboxConfig, Overflow
from greenroom.mailbox._deadletter import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSink,
    MemoryDeadLetters,
)
from greenroom.mailbox._envelope import Envelope, make_envelope
from greenroom.mailbox._memory import MemoryMailbox, MemoryMailboxes
from greenroom.mailbox._message import Message, check_message
from greenroom.mailbox._protocol import Mailbox, MailboxFactory, MailboxStatistics

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterSink",
    "Envelope",
    "Mailbox",
    "MailboxConfig",
    "MailboxFactory",
    "MailboxStatistics",
    "MemoryDeadLetters",
    "MemoryMailbox",
    "MemoryMailboxes",
    "Message",
    "Overflow",
    "check_message",
    "make_envelope",
]
