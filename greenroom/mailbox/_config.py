"""Mailbox configuration: plain, validated data."""

from __future__ import annotations

from typing import Literal

import msgspec

from greenroom._errors import InvalidSpec

__all__ = ["MailboxConfig", "Overflow"]

Overflow = Literal["wait", "fail"]


class MailboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an actor's mailbox is bounded.

    Attributes:
        capacity: the most messages it holds (default 1024). Mailboxes are
            always bounded: an actor that falls behind slows its senders
            instead of growing without limit.
        overflow: what ``tell`` does when the mailbox is full: ``"wait"``
            (the default) suspends the sender until there is room, in the
            order senders arrived; ``"fail"`` raises :class:`MailboxFull` and
            records a dead letter. ``tell_nowait`` always fails fast.
        kind: which of the runtime's mailbox factories makes it: ``"memory"``
            (built in) or a name given in ``Runtime(mailboxes={...})``, such
            as a durable one. ``None`` (the default) takes the kind of the
            nearest supervisor that sets ``mailbox_kind``, else the runtime's
            ``default_mailbox``.
    """

    capacity: int = 1024
    overflow: Overflow = "wait"
    kind: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise InvalidSpec(f"MailboxConfig.capacity must be an int >= 1, got {self.capacity!r}")
        if self.kind is not None and (not isinstance(self.kind, str) or not self.kind):
            raise InvalidSpec(
                f"MailboxConfig.kind must be a non-empty str or None, got {self.kind!r}"
            )
        if self.overflow not in ("wait", "fail"):
            raise InvalidSpec(
                f"MailboxConfig.overflow must be 'wait' or 'fail', got {self.overflow!r}"
            )
