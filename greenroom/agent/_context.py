"""ContextBuilder: the store, read under the worker's contract, made into a decider's Context.

::

    builder = ContextBuilder(
        system="You are a support agent. Answer in the customer's language.",
        facts=[Fact("preferences", PREFS, key=lambda c: c.user)],
    )
    built = await builder.build(view, conversation, tools=toolbox.definitions())
    built.context.facts["preferences"]      # the value read (None if absent)
    await view.check_fresh(built.read_set)  # before acting on a decision made from it

Every read goes through the worker's own store view, so the scope contract
is checked before any I/O (:class:`~greenroom.ContractViolation` for a
scope the worker does not declare in ``reads``), and each version read is
recorded in the read set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from greenroom.agent._conversation import Conversation
from greenroom.decide import ChatMessage, Context
from greenroom.store import ReadSet, Scope, StoreView

__all__ = ["BuiltContext", "ContextBuilder", "Fact"]


@dataclass(frozen=True)
class Fact:
    """One fact of a context: the record of ``key(conversation)`` in ``scope``, as ``name``.

    ``key`` is a function of the :class:`Conversation` (its ``id`` and
    ``user`` are the usual keys) or a fixed key.
    """

    name: str
    scope: Scope[Any]
    key: Callable[[Conversation], str] | str

    def key_of(self, conversation: Conversation) -> str:
        """The key this fact reads for ``conversation``."""
        return self.key if isinstance(self.key, str) else self.key(conversation)


class BuiltContext(msgspec.Struct, frozen=True, kw_only=True):
    """A context and the store versions it was built from.

    Attributes:
        context: what the decider sees.
        read_set: every (scope, key, version) read to build it; pass it to
            ``check_fresh`` before acting on a decision made from ``context``.
    """

    context: Context
    read_set: ReadSet


class ContextBuilder:
    """Builds a :class:`Context` for a conversation from the store, recording what it read.

    Args:
        facts: the records to read, in order, into ``Context.facts``.
        system: the system message put first, if any.

    Subclass it and override :meth:`build` to read differently; a worker
    only needs ``build`` and :attr:`scopes`.
    """

    def __init__(self, facts: Sequence[Fact] = (), *, system: str | None = None) -> None:
        names = [f.name for f in facts]
        if len(set(names)) != len(names):
            raise ValueError(f"ContextBuilder facts need distinct names, got {names}")
        self.facts = tuple(facts)
        self.system = system

    @property
    def scopes(self) -> tuple[Scope[Any], ...]:
        """The scopes :meth:`build` reads: declare them in the worker's ``reads``."""
        return tuple(dict.fromkeys(f.scope for f in self.facts))

    async def build(
        self,
        view: StoreView,
        conversation: Conversation,
        *,
        tools: Sequence[Mapping[str, object]] = (),
    ) -> BuiltContext:
        """Read every fact through ``view`` and assemble the context.

        A fact whose key was never written (or was deleted) is ``None``; its
        absence is in the read set too, so a later write makes it stale.

        Raises:
            ContractViolation: the view's actor may not read a fact's scope.
            StoreUnavailable, StoredValueInvalid: as the store's reads.
        """
        read_set = ReadSet()
        facts: dict[str, object] = {}
        for fact in self.facts:
            record = await view.get(fact.scope, fact.key_of(conversation), read_set=read_set)
            facts[fact.name] = None if record is None else record.value
        lead = (ChatMessage.system(self.system),) if self.system else ()
        context = Context(
            messages=(*lead, *conversation.messages),
            facts=facts,
            tools=tuple(tools),
        )
        return BuiltContext(context=context, read_set=read_set)
