"""Worker: the decide-act loop of one conversation turn, as explicit, replaceable steps.

One turn (:meth:`Worker.run_turn`)::

    build context ──▶ decide (DecisionGuard, the request's Budget)
         ▲                 │
         │ stale: a redo   ▼
         └───────── check_fresh(read set)     before any decision acts
                           │ fresh
        ┌──────────────┬───┴──────────┬──────────────┐
     CallTool       Delegate        Reply          Finish
        │              │               └──────┬───────┘
        │              │                      └──▶ save, answer the caller
        │          Delegator ──ask──▶ another agent
        │              └──▶ its answer into the conversation, decide again
    ToolRunner ──▶ results into the conversation, decide again
        └── parked for approval: save, answer "awaiting_approval", return

A parked call ends the handler, so the worker goes on with other messages;
``Resolve`` (a person's Approve or Deny) resumes the conversation where it
stopped. A tool failure or a decision fault raises out of the handler: the
supervisor retries the message per the worker's ``RetryPolicy`` (the turn
starts again from the state last saved), then dead-letters it and the
caller's ``ask`` raises ``HandlerError``. Past its budget a turn ends with
``BudgetExceeded``, which is never retried.

Conversations live in the store (one :class:`Conversation` per id, written
with compare-and-set at the end of every turn). In a fixed pool, a
conversation idle for ``passivate_after`` seconds is dropped from the
worker's memory; its next message loads it from the store, as after a
restart of the worker. In a keyed pool the worker is an
:class:`~greenroom.agent.Entity` of one conversation, and the coordinator
passivates the whole worker when the conversation is idle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import msgspec

import greenroom as gr
from greenroom.agent._context import BuiltContext, ContextBuilder
from greenroom.agent._conversation import Conversation
from greenroom.agent._delegation import Delegator
from greenroom.agent._entity import Entity
from greenroom.agent._keeper import ConversationKeeper
from greenroom.agent._messages import Answer, AnswerStatus, Request, Resolve
from greenroom.agent._runner import ToolRunner
from greenroom.decide import (
    Budget,
    CallTool,
    ChatMessage,
    Decider,
    DecisionGuard,
    DecisionResult,
    Delegate,
    Finish,
    Reply,
)
from greenroom.store import ReadEntry, ReadSet, Scope, declared_scopes
from greenroom.tools import (
    ApprovalDenied,
    ApprovalExpired,
    ApprovalPending,
    Expire,
    TicketMessage,
    ToolBox,
)
from greenroom.trace import current_tracer

__all__ = ["Worker"]


class _Passivate(gr.Message, frozen=True, kw_only=True):
    """To the worker itself: drop ``conversation`` from memory if untouched since ``touch``."""

    conversation: str
    touch: int


class Worker(Entity):
    """Runs conversation turns: context, decision, freshness check, tools, delegation, reply.

    Subclass it to declare the scopes it uses (and to name it in grants and
    scope contracts)::

        CONVERSATIONS = conversation_scope("desk.conversations", owner="DeskWorker")

        class DeskWorker(Worker):
            reads = (PREFS,)              # every scope of the builder's facts
            writes = (CONVERSATIONS,)

    Args:
        decider: decides each step (rules, a model, a fallback router).
        builder: builds the context from the store.
        conversations: the scope conversations are kept in (in ``writes``).
        budget: the limits of one turn (default :class:`Budget` defaults).
        runner: runs tool calls (default :class:`ToolRunner`).
        delegator: who a ``Delegate`` decision may hand a task to, and how
            (default: nobody; the decider reads an ``UnknownDelegate`` error).
        passivate_after: seconds a conversation stays in memory after its
            last turn (default 60.0; ``None``: until the worker stops). For
            a worker of a fixed pool; in a keyed pool the coordinator's
            ``passivate_after`` stops the whole worker.

    Every step is a method; override one to change it. Handlers: ``Request``
    and ``Resolve`` reply with an :class:`Answer`; ``Expire`` (a ticket's
    deadline) settles the parked call as expired.

    Raises (from ``on_start``, so the spawn fails): UsageError when a scope
    of the builder is not in ``reads`` or ``conversations`` not in ``writes``.
    """

    def __init__(
        self,
        decider: Decider,
        builder: ContextBuilder,
        *,
        conversations: Scope[Conversation],
        budget: Budget | None = None,
        runner: ToolRunner | None = None,
        delegator: Delegator | None = None,
        passivate_after: float | None = 60.0,
    ) -> None:
        if passivate_after is not None and not passivate_after >= 0:
            raise gr.InvalidSpec(f"passivate_after must be seconds >= 0, got {passivate_after!r}")
        self.decider = decider
        self.builder = builder
        self.conversations = conversations
        self.budget = budget or Budget()
        self.runner = runner or ToolRunner()
        self.delegator = delegator or Delegator()
        self.passivate_after = passivate_after
        self.keeper = ConversationKeeper(conversations)

    # -- lifecycle -------------------------------------------------------------

    async def on_start(self) -> None:
        reads, writes = declared_scopes(type(self))
        missing = [s.name for s in self.builder.scopes if s not in reads and s not in writes]
        cls = type(self).__qualname__
        if missing:
            raise gr.UsageError(
                f"{cls} builds its context from scopes {missing} it does not declare; "
                f"add them to {cls}.reads"
            )
        if self.conversations not in writes:
            raise gr.UsageError(
                f"{cls} keeps conversations in scope {self.conversations.name!r}; "
                f"add it to {cls}.writes (and make {cls} its owner)"
            )
        toolbox = self.toolbox
        if toolbox is not None:
            with contextlib.suppress(gr.UsageError):  # no approval gate: nothing to restore
                await toolbox.restore()

    @property
    def view(self) -> gr.ActorStoreView:
        """This worker's contract-checked store view."""
        return self.ctx.service(gr.ActorStoreView)

    @property
    def toolbox(self) -> ToolBox | None:
        """This worker's granted tools, or ``None`` when the runtime gives no tools."""
        try:
            return self.ctx.service(ToolBox)
        except gr.UsageError:
            return None

    # -- handlers --------------------------------------------------------------

    @gr.handler
    async def request(self, msg: Request) -> Answer:
        """A user's message: run one turn of its conversation."""
        conversation = await self.load(msg.conversation)
        parked = conversation.parked
        if parked is not None:
            return self.answer(
                conversation,
                "awaiting_approval",
                f"still waiting for approval of {parked.name}",
                ticket=conversation.ticket,
                tool=parked.name,
            )
        if msg.user and msg.user != conversation.user:
            conversation = msgspec.structs.replace(conversation, user=msg.user)
        return await self.run_turn(conversation.add(ChatMessage.user(msg.text)))

    @gr.handler
    async def resolve(self, msg: Resolve) -> Answer:
        """A person's verdict on the parked call: settle it and go on with the turn.

        Raises:
            UsageError: the conversation has no parked call of that ticket.
            TicketClosed, UnknownTicket: as ``ToolBox.resolve`` (not retried).
        """
        conversation = await self.load(msg.conversation)
        call, ticket = conversation.parked, conversation.ticket
        if call is None or ticket != msg.verdict.ticket:
            raise gr.UsageError(
                f"conversation {msg.conversation!r} has no call parked as ticket "
                f"{msg.verdict.ticket!r} (parked: {ticket!r}); resolve the ticket its "
                "Answer named"
            )
        result = await self.settle(call, msg.verdict)
        self.keeper.forget_ticket(ticket)
        return await self.run_turn(conversation.unpark().add(result))

    @gr.handler
    async def expire(self, msg: Expire) -> None:
        """A ticket's deadline passed: settle it, and record it in its conversation if known."""
        cid = self.keeper.conversation_of(msg.ticket)
        self.keeper.forget_ticket(msg.ticket)
        conversation = None if cid is None else await self.load(cid)
        if conversation is None or conversation.parked is None:
            await self._require_toolbox().settle(msg)
            return
        result = await self.settle(conversation.parked, msg)
        await self.save(conversation.unpark().add(result))

    @gr.handler
    async def evict_idle(self, msg: _Passivate) -> None:
        """Drop an idle conversation from memory (its state is in the store)."""
        if self.keeper.evict(msg.conversation, msg.touch):
            await self.on_passivated(msg.conversation)

    async def on_passivated(self, conversation: str) -> None:
        """Called after ``conversation`` was dropped from memory; a hook for subclasses."""

    async def may_passivate(self) -> bool:
        """A keyed worker stops when idle unless a call of its conversation waits for approval.

        The approval's verdict or expiry comes to this worker by name, so it
        stays until then.
        """
        return not self.keeper.parked()

    # -- the turn --------------------------------------------------------------

    async def run_turn(self, conversation: Conversation) -> Answer:
        """Decide and act until a reply, a finish, or a call parked for approval.

        Raises:
            BudgetExceeded: the turn passed its budget (never retried).
            DecisionFault, ModelError: the decider failed (retried by policy).
            ToolFailed, HttpError, GreenroomError: a tool call failed (retried by policy).
        """
        guard = DecisionGuard(self.budget)
        toolbox = self.toolbox
        redos = 0
        stale: tuple[ReadEntry, ...] = ()
        while True:
            with self.redo_span(stale, redos):
                built = await self.build_context(conversation, toolbox)
                result = await guard.decide(self.decider, built.context)
            stale = await self.check_fresh(built.read_set)
            if stale:
                redos += 1
                guard.reset_detectors()
                continue
            final = result.final
            if isinstance(final, Delegate):
                conversation = await self.delegate(conversation, final, guard)
                continue
            if final is not None:
                return await self.finish(conversation, final, redos)
            conversation = conversation.add(ChatMessage.assistant(calls=result.tool_calls))
            conversation, parked = await self.act(conversation, result, toolbox)
            if parked is not None:
                await self.save(conversation)
                assert conversation.parked is not None
                return self.answer(
                    conversation,
                    "awaiting_approval",
                    f"{conversation.parked.name} waits for approval",
                    redos,
                    ticket=parked,
                    tool=conversation.parked.name,
                )

    async def build_context(
        self, conversation: Conversation, toolbox: ToolBox | None
    ) -> BuiltContext:
        """The context for the next decision, read from the store now."""
        tools = () if toolbox is None else toolbox.definitions()
        return await self.builder.build(self.view, conversation, tools=tools)

    async def check_fresh(self, read_set: ReadSet) -> tuple[ReadEntry, ...]:
        """The reads that changed since the context was built (empty: act on the decision)."""
        if not read_set:
            return ()
        return await self.view.check_fresh(read_set)

    @contextlib.contextmanager
    def redo_span(self, stale: Sequence[ReadEntry], redos: int) -> Iterator[None]:
        """Around a rebuild after ``stale`` reads: a ``redo`` span when traced."""
        tracer = current_tracer.get()
        if not stale or tracer is None:
            yield
            return
        shown = [f"{e.scope}/{e.key}@{e.version}" for e in stale]
        self.ctx.log.bind(event="agent.redo", stale=shown).info("stale context: redo")
        attributes = {"greenroom.stale": shown, "greenroom.redo": redos}
        with tracer.span("redo", "stale context", attributes=attributes):
            yield

    async def act(
        self, conversation: Conversation, result: DecisionResult, toolbox: ToolBox | None
    ) -> tuple[Conversation, str | None]:
        """Run the decided tool calls in order; the conversation with their results.

        Returns the ticket too when a call was parked (the calls after it are
        answered as not run, so the decider can ask for them again).
        """
        box = self._require_toolbox() if toolbox is None else toolbox
        calls = result.tool_calls
        for i, call in enumerate(calls):
            try:
                message = await self.runner.run(box, call)
            except ApprovalPending as parked:
                skipped = [
                    ChatMessage.tool_result(c, f"not run: {call.name} waits for approval")
                    for c in calls[i + 1 :]
                ]
                return conversation.add(*skipped).park(call, parked.ticket), parked.ticket
            conversation = conversation.add(message)
        return conversation, None

    async def delegate(
        self, conversation: Conversation, decision: Delegate, guard: DecisionGuard
    ) -> Conversation:
        """Hand ``decision.task`` to the agent it names; the conversation with the exchange.

        The delegation is recorded as a ``"delegate"`` tool call and the
        delegate's answer as its result, so the decider reads it next step.
        An unknown name or a failed delegate comes back as ``"error: ..."``
        (see :class:`Delegator`).

        Raises:
            BudgetExceeded: the turn's deadline passed before or during it.
        """
        made = sum(len(m.tool_calls) for m in conversation.messages)
        call = self.delegator.call(decision, made)
        conversation = conversation.add(ChatMessage.assistant(calls=(call,)))
        result = await self.delegator.run(self.ctx, conversation, decision, call, guard.tracker)
        return conversation.add(result)

    async def settle(self, call: CallTool, verdict: TicketMessage) -> ChatMessage:
        """The tool message for a parked ``call`` settled by ``verdict`` (Approve, Deny, Expire).

        Raises:
            TicketClosed, UnknownTicket: as ``ToolBox.resolve``.
            ToolFailed, GreenroomError: the approved call failed (retried by policy).
        """
        box = self._require_toolbox()
        try:
            output = await box.resolve(verdict)
        except ApprovalDenied as exc:
            return ChatMessage.tool_result(call, f"denied: {exc.reason}")
        except ApprovalExpired:
            return ChatMessage.tool_result(call, "error: approval expired; the tool did not run")
        return self.runner.result(call, output)

    async def finish(self, conversation: Conversation, final: Reply | Finish, redos: int) -> Answer:
        """Save the turn and answer the caller."""
        turns = conversation.turns + 1
        if isinstance(final, Reply):
            done = conversation.add(ChatMessage.assistant(final.text))
            done = msgspec.structs.replace(done, turns=turns)
            await self.save(done)
            return self.answer(done, "replied", final.text, redos)
        done = msgspec.structs.replace(conversation, turns=turns)
        await self.save(done)
        return self.answer(done, "finished", final.reason, redos)

    def answer(
        self,
        conversation: Conversation,
        status: AnswerStatus,
        text: str,
        redos: int = 0,
        *,
        ticket: str | None = None,
        tool: str | None = None,
    ) -> Answer:
        """The :class:`Answer` to the caller."""
        return Answer(
            conversation=conversation.id,
            status=status,
            text=text,
            ticket=ticket,
            tool=tool,
            redos=redos,
            worker=self.ctx.name,
        )

    # -- conversation state ----------------------------------------------------

    async def load(self, conversation: str) -> Conversation:
        """The conversation from memory, else from the store, else a new one."""
        return await self.keeper.load(self.view, conversation)

    async def save(self, conversation: Conversation) -> None:
        """Write the conversation (compare-and-set on the version loaded) and keep it in memory.

        Raises:
            VersionConflict: another actor wrote it since (two workers on one
                conversation: the pool was resized); the message is retried
                and loads the newer state.
        """
        touch = await self.keeper.save(self.view, conversation)
        if self.passivate_after is not None:
            self.ctx.send_after(
                self.passivate_after, _Passivate(conversation=conversation.id, touch=touch)
            )

    def _require_toolbox(self) -> ToolBox:
        toolbox = self.toolbox
        if toolbox is None:
            raise gr.UsageError(
                f"{type(self).__qualname__} was asked to call a tool but the runtime gives no "
                "tools; pass Runtime(extensions=[ToolAccess(...)])"
            )
        return toolbox
