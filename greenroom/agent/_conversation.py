"""A conversation's state as it lives in the store, and the scope that holds it."""

from __future__ import annotations

import msgspec

from greenroom.decide import CallTool, ChatMessage
from greenroom.store import Scope

__all__ = ["Conversation", "conversation_scope"]


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs to take a conversation up again, from any instance.

    Written to the store at the end of every turn and when a call is
    parked, so a restarted or passivated worker comes back to it as it was.

    Attributes:
        id: the conversation id.
        user: who the conversation is with (the latest request's ``user``).
        messages: the conversation so far, oldest first (user, assistant and
            tool messages; no system messages or facts, which are rebuilt).
        parked: the call waiting for approval, if any.
        ticket: the ticket of ``parked``.
        turns: turns completed.
    """

    id: str
    user: str = ""
    messages: tuple[ChatMessage, ...] = ()
    parked: CallTool | None = None
    ticket: str | None = None
    turns: int = 0

    def add(self, *messages: ChatMessage) -> Conversation:
        """A copy with ``messages`` appended."""
        return msgspec.structs.replace(self, messages=(*self.messages, *messages))

    def park(self, call: CallTool, ticket: str) -> Conversation:
        """A copy whose ``call`` waits for approval as ``ticket``."""
        return msgspec.structs.replace(self, parked=call, ticket=ticket)

    def unpark(self) -> Conversation:
        """A copy with no parked call."""
        return msgspec.structs.replace(self, parked=None, ticket=None)


def conversation_scope(name: str, *, owner: str | type) -> Scope[Conversation]:
    """The scope a worker keeps its conversations in; ``owner`` is the worker class (or name).

    Declare it in the worker's ``writes`` (it reads it as the owner).
    """
    return Scope(name, Conversation, owner=owner)
