"""ConversationKeeper: a worker's conversations, in the store and (while active) in memory."""

from __future__ import annotations

from greenroom.agent._conversation import Conversation
from greenroom.store import Scope, StoreView, Tombstone, VersionConflict

__all__ = ["ConversationKeeper"]


class ConversationKeeper:
    """Loads and saves one worker's conversations; keeps the active ones in memory.

    The store is the truth: a conversation is written (compare-and-set on
    the version it was loaded at) at the end of every turn, so dropping it
    from memory loses nothing. Each save counts a *touch*; :meth:`evict`
    drops a conversation only if it was not touched since, and never while
    a call of it waits for approval.
    """

    __slots__ = ("_live", "_tickets", "_touched", "scope")

    def __init__(self, scope: Scope[Conversation]) -> None:
        self.scope = scope
        self._live: dict[str, tuple[Conversation, int]] = {}  # id -> (state, store version)
        self._touched: dict[str, int] = {}
        self._tickets: dict[str, str] = {}  # parked ticket -> conversation id

    def __len__(self) -> int:
        return len(self._live)

    async def load(self, view: StoreView, conversation: str) -> Conversation:
        """The conversation from memory, else from the store, else a new one."""
        live = self._live.get(conversation)
        if live is not None:
            return live[0]
        record = await view.read(self.scope, conversation)
        if record is None or isinstance(record, Tombstone):
            state = Conversation(id=conversation)
            self._live[conversation] = (state, 0 if record is None else record.version)
            return state
        self._live[conversation] = (record.value, record.version)
        if record.value.ticket is not None:
            self._tickets[record.value.ticket] = conversation
        return record.value

    async def save(self, view: StoreView, conversation: Conversation) -> int:
        """Write ``conversation`` and keep it in memory; its touch count.

        Raises:
            VersionConflict: another actor wrote it since it was loaded (the
                memory copy is dropped, so a retry loads the newer state).
        """
        _, version = self._live.get(conversation.id, (conversation, 0))
        try:
            record = await view.write(self.scope, conversation.id, conversation, expected=version)
        except VersionConflict:
            self._live.pop(conversation.id, None)
            raise
        self._live[conversation.id] = (conversation, record.version)
        if conversation.ticket is not None:
            self._tickets[conversation.ticket] = conversation.id
        touch = self._touched.get(conversation.id, 0) + 1
        self._touched[conversation.id] = touch
        return touch

    def parked(self) -> bool:
        """Whether a conversation in memory has a call waiting for approval."""
        return any(state.parked is not None for state, _ in self._live.values())

    def conversation_of(self, ticket: str) -> str | None:
        """The conversation that parked ``ticket``, if it is known here."""
        return self._tickets.get(ticket)

    def forget_ticket(self, ticket: str) -> None:
        """``ticket`` is settled."""
        self._tickets.pop(ticket, None)

    def evict(self, conversation: str, touch: int) -> bool:
        """Drop ``conversation`` from memory if untouched since ``touch`` and not parked."""
        if self._touched.get(conversation) != touch:
            return False
        live = self._live.get(conversation)
        if live is not None and live[0].parked is not None:
            return False
        self._live.pop(conversation, None)
        self._touched.pop(conversation, None)
        return True
