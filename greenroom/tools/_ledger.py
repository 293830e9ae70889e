"""The side-effect ledger: an intent before a tool acts, a receipt after, and no blind re-runs.

An :class:`Interceptor` backed by a :class:`~greenroom.store.Store`::

    ledger = Ledger(store)
    access = ToolAccess(registry, interceptors=[ledger], ...)

For every call of a tool that is not ``PURE`` it keeps one
:class:`LedgerEntry` under the step's key ``actor/request/step`` (see
:func:`step_key`), where *request* is the causation id of the message
being handled (``Envelope.causation``) and *step* counts the tool calls of
one delivery from 0. The rules that make a step the same step again:

- a redelivered message (same envelope, after a crash or a failed
  attempt) names the same steps;
- a request forwarded again under a new envelope (``ctx.forward`` keeps the
  causation; a router redelivered after a crash forwards again) names the
  same steps, so a worker does not pay twice for one order;
- a message re-sent with the same ``idempotency_key`` (``tell``/``ask``) to
  the same actor names the same steps, also after the mailbox's dedupe
  window: the ledger's memory is the store's, with no window;
- a fresh ``tell``/``ask`` without a key is a new request, even from inside
  a handler: a handler that is redelivered and tells again (no key) starts
  new steps at its recipient. Give such sends a key derived from the
  message being handled, or forward instead;
- steps are per actor: the same request reaching another actor (another
  member of a round-robin pool) is another actor's steps. Route requests
  with irreversible steps by key (a consistent-hash pool, a keyed pool).

For each step:

1. before the tool runs, an *intent* (tool, effect, input hash, grant,
   message, step), written with compare-and-set ``expected=0``; the call
   waits until it is committed (durable, with ``SqliteStore``);
2. the tool runs;
3. after it returns, a *receipt* with its Output, compare-and-set on the
   intent's version. If the tool raises, the failure is noted on the intent
   (no receipt).

When the step comes again (the message was redelivered after a crash or
retried after a failure, or the request forwarded or re-sent again), the
entry decides, before anything runs:

============================  =====================================================
the step has                  what the call does
============================  =====================================================
a receipt                     returns the recorded Output; the tool does not run
an intent, no receipt:
 ``Idempotent(key=...)``      runs the tool again (same input, so the same key),
                              then writes the receipt
 ``Compensable(undo=...)``    fails closed: :class:`StepInterrupted`, naming the undo
 ``IRREVERSIBLE``             fails closed: :class:`StepInterrupted`
an intent of another input    :class:`StepInputChanged`; nothing runs
============================  =====================================================

Both errors are ``NotRetryable``: the supervisor dead-letters the message at
once, with an error naming actor, request, step and tool, for a person to
decide. This is how an interrupted effect surfaces: every step whose tool
may have run without its receipt being written is a ``StepInterrupted``
dead letter (one per delivery that met it: a request forwarded twice
before the crash gives two), and :meth:`Ledger.interrupted` lists them.
A person then completes the step (:meth:`Ledger.complete`) or forgets
it (:meth:`Ledger.forget`) and redrives the dead letter (it keeps its causation, so it meets
the decided step). A compensable tool fails closed rather than
being undone and re-run automatically: whether the first run took effect
is unknown, and an undo of an effect that never happened is a side effect
of its own. ``PURE`` tools bypass the ledger and simply run again.

Records are written through the ``Store`` protocol directly (the runtime's
own bookkeeping, not an actor's scope); store errors propagate as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.store import Scope, Store, VersionConflict, Versioned
from greenroom.tools._call import Invocation, Proceed
from greenroom.tools._effect import Compensable, Effect, Idempotent, Pure
from greenroom.tools._effect_errors import StepInputChanged, StepInterrupted
from greenroom.tools._errors import ToolOutputError
from greenroom.tools._grant import Grant
from greenroom.trace._logging import logger

__all__ = ["LEDGER_SCOPE", "Ledger", "LedgerEntry", "Receipt"]

_ENCODE = msgspec.json.Encoder().encode


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a step's tool: its Output as JSON, and who wrote it when."""

    output: bytes
    call_id: int
    at: float


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One step of one request: the intent, and its receipt once the tool returned.

    Attributes:
        actor, message_id, step: the step (``message_id`` is the request's
            causation id, ``None`` for a call made outside a handler).
        tool, effect, input_hash, grant, delegation: the call it intends.
        call_id: the :class:`ToolCall` that wrote the intent.
        attempt: the delivery attempt of that call's message.
        trace_id: the trace of that call.
        at: when the intent was written (seconds since the epoch).
        receipt: the outcome, ``None`` while the step has not returned.
        failure: the last error the tool raised at this step, if any.
    """

    actor: str
    message_id: int | None
    step: int
    tool: str
    effect: Effect
    input_hash: str
    grant: Grant
    delegation: int | None
    call_id: int
    attempt: int
    trace_id: str | None
    at: float
    receipt: Receipt | None = None
    failure: ErrorInfo | None = None


LEDGER_SCOPE: Scope[LedgerEntry] = Scope("greenroom.ledger", LedgerEntry, owner="greenroom.ledger")
"""Where the ledger keeps its entries, by step key."""


class Ledger:
    """An interceptor that keeps intents and receipts of non-pure tool calls in ``store``.

    Put it innermost in ``ToolAccess(interceptors=[...])`` (after an
    approval gate or anything that may refuse the call), so that it sees
    only calls that are about to run.

    Args:
        store: where entries live; a durable one (``SqliteStore``) for
            crash safety.
        scope: the scope of the entries (default :data:`LEDGER_SCOPE`).
        clock: wall-clock seconds, for the entries' times.
    """

    def __init__(
        self,
        store: Store,
        *,
        scope: Scope[LedgerEntry] = LEDGER_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.scope = scope
        self._clock = clock

    async def intercept(self, invocation: Invocation, proceed: Proceed) -> msgspec.Struct:
        """Run the call under an intent and a receipt, or answer it from the ledger.

        Raises:
            StepInterrupted: the step has an intent without a receipt and
                its tool is irreversible or compensable; nothing ran.
            StepInputChanged: the step's intent is of another tool or input.
            ToolOutputError: a recorded receipt no longer decodes into Output.
            StoreError: the store failed (``VersionConflict``,
                ``StoreUnavailable``, ...); the tool may have run if it
                happened on the receipt.
            whatever ``proceed`` raises.
        """
        if isinstance(invocation.effect, Pure):
            return await proceed()
        key = invocation.key
        store, scope = self.store, self.scope
        found = await store.read(scope, key)
        if isinstance(found, Versioned):
            self._check_redelivery(invocation, key, found.value)
            receipt = found.value.receipt
            if receipt is not None:
                return self._decode(invocation, receipt.output)
            entry, version = found.value, found.version
        else:
            entry = self._intent(invocation)
            try:
                written = await store.write(
                    scope,
                    key,
                    entry,
                    # 0: a new step; a forgotten step's tombstone version otherwise
                    expected=0 if found is None else found.version,
                    writer=invocation.actor,
                    trace_id=invocation.trace_id,
                )
            except VersionConflict:
                # Another holder of the same message wrote first: decide from its entry.
                return await self.intercept(invocation, proceed)
            version = written.version
        try:
            output = await proceed()
        except Exception as exc:
            await self._note_failure(invocation, key, entry, version, exc)
            raise
        receipt = Receipt(output=_ENCODE(output), call_id=invocation.call_id, at=self._clock())
        done = msgspec.structs.replace(entry, receipt=receipt)
        await store.write(
            scope,
            key,
            done,
            expected=version,
            writer=invocation.actor,
            trace_id=invocation.trace_id,
        )
        return output

    async def _note_failure(
        self, invocation: Invocation, key: str, entry: LedgerEntry, version: int, exc: Exception
    ) -> None:
        # For the person deciding; the tool's own error is what propagates.
        failed = msgspec.structs.replace(
            entry, failure=ErrorInfo.from_exception(exc, with_traceback=False)
        )
        try:
            await self.store.write(
                self.scope, key, failed, expected=version, writer=invocation.actor
            )
        except Exception as note:
            logger.bind(actor=invocation.actor, key=key, event="tools.ledger_note_failed").warning(
                "could not note the failure of step {}: {!r}", key, note
            )

    def _check_redelivery(self, invocation: Invocation, key: str, entry: LedgerEntry) -> None:
        """Refuse a step that asks for another call, or that must not run again."""
        if entry.tool != invocation.tool or entry.input_hash != invocation.input_hash:
            raise StepInputChanged(
                invocation.tool,
                invocation.actor,
                invocation.message_id,
                invocation.step,
                key,
                entry.tool,
                invocation.input_hash,
                entry.input_hash,
            )
        if entry.receipt is None and not isinstance(entry.effect, Idempotent):
            undo = entry.effect.undo if isinstance(entry.effect, Compensable) else None
            raise StepInterrupted(
                entry.tool,
                invocation.actor,
                invocation.message_id,
                invocation.step,
                key,
                "compensable" if undo is not None else "irreversible",
                undo,
            )

    def _intent(self, invocation: Invocation) -> LedgerEntry:
        return LedgerEntry(
            actor=invocation.actor,
            message_id=invocation.message_id,
            step=invocation.step,
            tool=invocation.tool,
            effect=invocation.effect,
            input_hash=invocation.input_hash,
            grant=invocation.grant,
            delegation=invocation.delegation,
            call_id=invocation.call_id,
            attempt=invocation.attempt,
            trace_id=invocation.trace_id,
            at=self._clock(),
        )

    def _decode(self, invocation: Invocation, data: bytes) -> msgspec.Struct:
        try:
            output: msgspec.Struct = msgspec.json.decode(data, type=invocation.output_type)
        except msgspec.DecodeError as exc:
            raise ToolOutputError(
                invocation.tool,
                invocation.output_type.__qualname__,
                f"a recorded receipt that does not decode ({exc})",
            ) from exc
        return output

    # -- for the person who decides ------------------------------------------

    async def entry(self, key: str) -> LedgerEntry | None:
        """The entry of step ``key`` (``ToolCall.key``), ``None`` if the step wrote none."""
        found = await self.store.read(self.scope, key)
        return found.value if isinstance(found, Versioned) else None

    async def entries(self, actor: str) -> list[tuple[str, LedgerEntry]]:
        """Every entry of ``actor``, by key."""
        return [(k, v.value) for k, v in await self.store.scan(self.scope, f"{actor}/")]

    async def interrupted(self, actor: str) -> list[tuple[str, LedgerEntry]]:
        """The entries of ``actor`` with an intent and no receipt: the steps to decide on."""
        return [(k, e) for k, e in await self.entries(actor) if e.receipt is None]

    async def complete(self, key: str, output: msgspec.Struct, *, by: str | None = None) -> None:
        """Record the receipt of an interrupted step that did take effect (checked by a person).

        A redelivery of its message then gets ``output`` back without running the tool.

        Raises:
            KeyError: the step has no entry.
            VersionConflict: the entry changed meanwhile.
        """
        found = await self.store.read(self.scope, key)
        if not isinstance(found, Versioned):
            raise KeyError(key)
        receipt = Receipt(output=_ENCODE(output), call_id=0, at=self._clock())
        done = msgspec.structs.replace(found.value, receipt=receipt)
        await self.store.write(self.scope, key, done, expected=found.version, writer=by)

    async def forget(self, key: str, *, by: str | None = None) -> None:
        """Delete the entry of a step that did not take effect, so a redelivery runs it again."""
        await self.store.delete(self.scope, key, writer=by)
