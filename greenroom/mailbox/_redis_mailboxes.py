"""The pump of RedisMailboxes: one task that writes and reads every actor's stream.

Each cycle sends, in one pipeline: acks (XACK + XDEL), saved attempts,
dead letters (of undecodable entries, and the runtime's through
:class:`RedisDeadLetterSink`), then puts (a Lua script: dedupe the envelope id with
``SET NX PX``, check ``XLEN`` against the capacity, ``XADD``). Then it
reads, for mailboxes starting, their own pending entries (a previous
incarnation's), and for mailboxes with room and something to read, new
entries of all their streams in one XREADGROUP. Every ``lease / 3`` seconds
it renews the leases of the entries it holds (XCLAIM JUSTID) and claims
entries other consumers left idle longer than ``lease`` (XPENDING + XCLAIM,
``attempt`` = the entry's delivery count).

Every entry read is decoded without raising, whatever a foreign or broken
producer wrote in it: one whose body, header (ids, times, strings) or
saved attempt count cannot be read is a dead letter (with the typed error
saying what was found) and acked; one that repeats the envelope id of an
entry the mailbox holds is acked as a duplicate (same body) or
dead-lettered as an :class:`EnvelopeIdConflict` (another body). So no entry
can stop the entries behind it, nor pass for an outage.

When Redis fails (the connection is lost, the server restarts), the pump
is in an *outage* until a PING and a whole cycle succeed again: it retries
with exponential backoff (50 ms doubling to 2 s, reset on success), logs
one warning when the outage starts and one info when it ends. Meanwhile
awaited puts fail at once with :class:`MailboxUnavailable` (never wait
for the next retry; a put whose pipeline failed may still have been
written: the error means "outcome unknown", and a re-put of the same
envelope is deduped by its id) and a flush fails with the next retry; fire-and-forget
puts (``offer``), acks, saved attempts and dead letters stay queued (the
puts bounded by each mailbox's capacity) and are written when Redis
answers again. The mailboxes' buffered messages are still handed out.
Closing in an outage tries once more, then drops what is queued (logged;
the entries concerned stay unacked, so are delivered again). On recovery every
mailbox reads its own pending entries again, so entries whose XREADGROUP
reply was lost with the connection are delivered, and a consumer group
lost with the server's data is created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from greenroom._errors import MailboxFull
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import EnvelopeIdConflict, MailboxUnavailable
from greenroom.mailbox._redis_client import redis_error
from greenroom.mailbox._redis_mailbox_entries import (
    PUT,
    Keys,
    attempt_of,
    dead_letter,
    decode_entry,
    encode_header,
    entries_by_stream,
    undecodable,
)
from greenroom.mailbox._redis_outage import Outage
from greenroom.mailbox._sqlite_rows import Poison
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    import redis.asyncio

    from greenroom.mailbox._redis_mailbox import RedisMailbox

__all__ = ["Keys", "Pump", "PutOp", "PutTarget"]


class PutTarget(Protocol):
    """What a put needs of where it goes: a RedisMailbox, or a send-only Outbox."""

    name: str
    capacity: int
    keys: Keys
    held: set[int]
    wanted: bool

    def forget(self, count: int) -> None: ...


class PutOp:
    """One queued put and the future its caller waits on (``None``: fire-and-forget)."""

    __slots__ = ("data", "done", "envelope", "mailbox", "taken")

    def __init__(
        self,
        mailbox: PutTarget,
        envelope: Envelope,
        data: bytes,
        done: asyncio.Future[None] | None,
    ) -> None:
        self.mailbox = mailbox
        self.envelope = envelope
        self.data = data
        self.done = done
        self.taken = False


def _settle(future: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if future is None or future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Pump:
    """Queues of one RedisMailboxes and the task that sends and reads them."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str,
        consumer: str,
        *,
        batch: int,
        lease: float,
        dedupe_ttl: float,
        poll: float,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.group = "greenroom"
        self.consumer = consumer
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.dedupe_ttl = dedupe_ttl
        self._ttl_ms = max(1, int(dedupe_ttl * 1000))
        self.boxes: dict[str, RedisMailbox] = {}
        self.puts: deque[PutOp] = deque()
        self.acks: list[tuple[Keys, bytes, int | None]] = []
        self.remembered: list[str] = []  # dedupe markers of acked keyed tells
        self.attempts: list[tuple[Keys, int, int]] = []
        self.letters: list[dict[Any, Any]] = []
        self.flushers: list[asyncio.Future[None]] = []
        self.closing = False
        self.stopped = False  # the task has ended (or never will run): nothing more is written
        self.rejected: Callable[[Envelope, Poison | None], None] | None = None
        self.duplicates = 0  # entries acked as copies of an envelope a mailbox held
        self.outage = Outage(prefix)
        self._event = asyncio.Event()
        self._renewed = time.monotonic()
        self.dead_key = f"{prefix}dead"

    def keys_of(self, actor: str) -> Keys:
        base = f"{self.prefix}{{{actor}}}:"
        return Keys(base + "s", base + "a", base + "d:")

    def wake(self) -> None:
        self._event.set()

    # -- queued by the mailboxes ---------------------------------------------

    def attach(self, box: RedisMailbox) -> None:
        old = self.boxes.get(box.name)
        if old is not None and old is not box:
            old.close()
        self.boxes[box.name] = box
        self.wake()

    def detach(self, box: RedisMailbox) -> None:
        if self.boxes.get(box.name) is box:
            del self.boxes[box.name]

    def put(
        self, box: PutTarget, envelope: Envelope, data: bytes, done: asyncio.Future[None] | None
    ) -> PutOp:
        op = PutOp(box, envelope, data, done)
        if done is not None and self.outage.down:
            # Fail an awaited put at once rather than after the next retry (up
            # to BACKOFF_CAP away); fire-and-forget ones are kept for recovery.
            # Settled on the next loop turn, so the caller's ``await`` still
            # yields: a retry loop around put cannot starve the pump.
            self._refuse(op, None, settle=False)
            asyncio.get_running_loop().call_soon(_settle, done, self.outage.error("put"))
            return op
        self.puts.append(op)
        self.wake()
        return op

    def withdraw(self, op: PutOp) -> None:
        if op.taken:
            return
        try:
            self.puts.remove(op)
        except ValueError:
            return
        op.mailbox.held.discard(op.envelope.id)
        op.mailbox.forget(1)

    def ack(self, box: RedisMailbox, envelope_id: int, sid: bytes, remember: bool) -> None:
        self.acks.append((box.keys, sid, envelope_id))
        if remember:  # a keyed tell: its marker is kept for dedupe_ttl after the ack
            self.remembered.append(box.keys.dedupe + str(envelope_id))
        self.wake()

    def attempt(self, box: RedisMailbox, envelope_id: int, attempt: int) -> None:
        self.attempts.append((box.keys, envelope_id, attempt))
        self.wake()

    async def flush(self) -> None:
        # In an outage this waits for the next retry (at most BACKOFF_CAP
        # away) and fails with it, so a loop of flushes paces itself on the
        # pump's backoff.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # "What is new is read" includes other processes' puts, not only
        # after the next poll: a loop of flushes would otherwise keep the
        # pump from ever being idle for ``poll``, and so from reading them.
        for box in self.boxes.values():
            box.wanted = True
        self.flushers.append(future)
        self.wake()
        await future

    # -- the task ---------------------------------------------------------------

    async def run(self) -> None:
        """Write and read until closing and nothing is queued; ride out Redis outages."""
        try:
            await self._run()
        finally:
            self.stopped = True

    async def _run(self) -> None:
        while True:
            idle = not (self.puts or self.acks or self.attempts or self.letters or self.flushers)
            if self.closing and idle:
                return
            if idle and not self.outage.down:
                try:
                    await asyncio.wait_for(self._event.wait(), self.poll)
                except TimeoutError:
                    for box in self.boxes.values():
                        box.wanted = True  # other processes may have put
            self._event.clear()
            try:
                if self.outage.down:
                    # A cycle with nothing queued touches no key: only a
                    # command proves Redis is back.
                    await self.client.ping()
                await self._cycle()
            except Exception as error:  # redis down, restarting, or lost its data
                if not isinstance(error, redis_error() | OSError):
                    # Not Redis failing: a bug. Entries are never the cause
                    # (decoding them cannot raise), so say so loudly, and
                    # still retry with backoff rather than end the pump.
                    logger.bind(event="redis_pump_error", prefix=self.prefix).opt(
                        exception=error
                    ).error("redis (prefix {prefix}): the mailbox pump failed", prefix=self.prefix)
                await self._lost(error)
                if self.closing:
                    # One last try failed: give up what is queued rather than
                    # wait for Redis; it stays unacked in the streams.
                    self._give_up()
                    return
                await self.outage.wait(self._event, lambda: self.closing)
                continue
            if self.outage.down:
                self.outage.end()

    async def _lost(self, error: Exception) -> None:
        """A cycle failed: enter (or stay in) the outage; fail who waits on Redis."""
        self.outage.fail(error)
        for box in self.boxes.values():
            box.started = False  # read its pending entries again on recovery
        flushers, self.flushers = self.flushers, []
        for future in flushers:
            _settle(future, self.outage.error("flush"))
        kept: deque[PutOp] = deque()
        for op in self.puts:
            if op.done is None:
                kept.append(op)
            else:
                self._refuse(op, self.outage.error("put"))
        self.puts = kept
        # Pooled connections are dead after a restart; dropping them now makes
        # the first command after recovery open a fresh one instead of failing.
        with contextlib.suppress(Exception):  # best effort: they reconnect on use anyway
            await self.client.connection_pool.disconnect(inuse_connections=False)

    def _give_up(self) -> None:
        """Closing: drop what could not be written; it stays unacked in Redis."""
        puts, self.puts = self.puts, deque()
        for op in puts:
            self._refuse(op, self.outage.error("put"))
        flushers, self.flushers = self.flushers, []
        for future in flushers:
            _settle(future, self.outage.error("flush"))
        if puts or self.acks or self.attempts or self.letters:
            logger.bind(event="redis_writes_dropped", prefix=self.prefix).warning(
                "redis (prefix {prefix}) closed while unreachable: {puts} put(s), {acks} ack(s), "
                "{letters} dead letter(s) not written; unacked entries will be delivered again",
                prefix=self.prefix,
                puts=len(puts),
                acks=len(self.acks),
                letters=len(self.letters),
            )
        self.acks.clear()
        self.remembered.clear()
        self.attempts.clear()
        self.letters.clear()

    async def _cycle(self) -> None:
        flushers, self.flushers = self.flushers, []
        try:
            await self._write()
            await self._read()
            if time.monotonic() - self._renewed > self.lease / 3:
                await self._renew_and_claim()
        except BaseException:
            self.flushers[:0] = flushers  # failed with the cycle, by _lost
            raise
        for future in flushers:
            _settle(future, None)

    async def _write(self) -> None:
        acks, self.acks = self.acks, []
        remembered, self.remembered = self.remembered, []
        attempts, self.attempts = self.attempts, []
        letters, self.letters = self.letters, []
        puts = list(self.puts)
        self.puts.clear()
        starting = [box for box in self.boxes.values() if not box.started]
        if not (acks or attempts or letters or puts or starting):
            return
        for op in puts:
            op.taken = True
        group = self.group
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                by_stream: dict[Keys, list[tuple[bytes, int | None]]] = {}
                for keys, sid, eid in acks:
                    by_stream.setdefault(keys, []).append((sid, eid))
                for keys, done in by_stream.items():  # one command of each kind per stream
                    sids = [sid for sid, _ in done]
                    pipe.xack(keys.stream, group, *sids)
                    pipe.xdel(keys.stream, *sids)
                    # None: an entry whose envelope (if any) is not its own to
                    # forget: a duplicate, or no readable header.
                    eids = [str(eid) for _, eid in done if eid is not None]
                    if eids:
                        pipe.hdel(keys.attempts, *eids)
                        pipe.delete(*(keys.dedupe + eid for eid in eids))
                for marker in remembered:  # after the deletes: 'a', acked, still deduping
                    pipe.set(marker, "a", px=self._ttl_ms)
                for keys, eid, attempt in attempts:
                    pipe.hset(keys.attempts, str(eid), attempt)
                for letter in letters:
                    pipe.xadd(self.dead_key, letter)
                for box in starting:
                    pipe.xgroup_create(box.keys.stream, group, id="0", mkstream=True)
                for op in puts:
                    target, envelope = op.mailbox, op.envelope
                    pipe.eval(
                        PUT,
                        2,
                        target.keys.stream,
                        target.keys.dedupe + str(envelope.id),
                        target.capacity,
                        self._ttl_ms,
                        encode_header(envelope),
                        op.data,
                    )
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as error:
            # Kept for the retry: acks, attempts and dead letters are
            # idempotent or nearly (a letter may be written twice if the reply
            # was lost); fire-and-forget puts are deduped by envelope id.
            self.acks[:0] = acks
            self.remembered[:0] = remembered
            self.attempts[:0] = attempts
            self.letters[:0] = letters
            retry = [op for op in puts if op.done is None]
            for op in retry:
                op.taken = False
            self.puts.extendleft(reversed(retry))
            for op in puts:
                if op.done is not None:  # the caller decides; the entry may have been added
                    failure = MailboxUnavailable(
                        f"redis (prefix {self.prefix})", "put", str(error) or repr(error)
                    )
                    failure.__cause__ = error
                    self._refuse(op, failure)
            raise
        for op, answer in zip(puts, answers[len(answers) - len(puts) :], strict=True):
            target = op.mailbox
            if isinstance(answer, bytes):
                target.wanted = True
                _settle(op.done, None)
            elif answer == 0:  # a duplicate: the stream has (or had) this envelope
                self._refuse(op, None)
            elif isinstance(answer, Exception):
                failure = MailboxUnavailable(f"redis (prefix {self.prefix})", "put", str(answer))
                failure.__cause__ = answer
                self._refuse(op, failure)
            else:
                self._refuse(op, MailboxFull(target.name, target.capacity))
        for box in starting:
            await self._start(box)

    def _refuse(self, op: PutOp, error: BaseException | None, *, settle: bool = True) -> None:
        op.mailbox.held.discard(op.envelope.id)
        op.mailbox.forget(1)
        if settle:
            _settle(op.done, error)

    async def _start(self, box: RedisMailbox) -> None:
        """Read what this consumer left pending in the stream (a closed incarnation's)."""
        after = b"0"
        while not box.closed:
            reply = await self.client.xreadgroup(
                self.group, self.consumer, {box.keys.stream: after}, count=self.batch
            )
            entries = entries_by_stream(reply).get(box.keys.stream.encode(), [])
            if not entries:
                break
            after = entries[-1][0]
            # Read again after an outage: entries acked meanwhile, whose XACK
            # is still queued, are not delivered twice.
            acking = {sid for keys, sid, _ in self.acks if keys == box.keys}
            if acking:
                entries = [entry for entry in entries if entry[0] not in acking]
            await self._deliver(box, entries, look_up=True)
        box.started = True
        box.wanted = True

    async def _read(self) -> None:
        ready = [b for b in self.boxes.values() if b.started and b.wanted and b.room > 0]
        if not ready:
            return
        streams: dict[Any, Any] = {box.keys.stream: ">" for box in ready}
        reply = await self.client.xreadgroup(self.group, self.consumer, streams, count=self.batch)
        got = entries_by_stream(reply)
        for box in ready:
            entries = got.get(box.keys.stream.encode(), [])
            box.wanted = len(entries) >= self.batch
            if entries:
                await self._deliver(box, entries, look_up=False)

    async def _deliver(
        self,
        box: RedisMailbox,
        entries: list[tuple[bytes, dict[bytes, bytes] | None]],
        *,
        look_up: bool,
        counts: dict[bytes, int] | None = None,
    ) -> None:
        """Decode entries into the buffer; ``look_up``: read their saved attempts first.

        ``counts``: delivery counts of claimed entries, by entry id. Each
        entry is one of: delivered (buffered), skipped (this very entry is
        buffered or handed out already: read again after an outage), acked
        as a duplicate (another entry of the same envelope, same body, is
        held), or dead-lettered and acked (it cannot be decoded, its saved
        attempt count cannot be read, or it repeats a held envelope's id
        with another body). Decoding never raises, so no entry can stop the
        others, nor pass for an outage.
        """
        decoded = [
            (sid, fields, *decode_entry(box.decoder, box.name, fields)) for sid, fields in entries
        ]
        saved: dict[int, bytes] = {}
        if look_up:
            ids = [e.id for _, _, e, p in decoded if e is not None and p is None]
            saved = await self._saved_attempts(box, ids)
        fresh: dict[int, Envelope] = {}  # delivered by this call, not yet in the buffer
        good: list[Envelope] = []
        for sid, fields, envelope, poison in decoded:
            if envelope is None or poison is not None:
                self._poison(box, sid, envelope, poison, fields)
                continue
            known = box.sids.get(envelope.id)
            if known == sid:
                continue
            if known is not None:
                self._repeat(box, sid, envelope, fields, fresh.get(envelope.id))
                continue
            attempt = 1
            raw = saved.get(envelope.id)
            if raw is not None:
                read = attempt_of(raw)
                if read is None:
                    detail = (
                        f"its saved attempt count in {box.keys.attempts} is {raw[:40]!r}, "
                        "not an int in 1 .. 2**31 - 1"
                    )
                    self._poison(box, sid, envelope, undecodable(box.name, detail), fields)
                    continue
                attempt = read
            if counts is not None:
                attempt = max(attempt, counts.get(sid, 1))
            box.adopt(envelope.id)
            envelope.attempt = attempt
            box.sids[envelope.id] = sid
            fresh[envelope.id] = envelope
            good.append(envelope)
        box.arrive(good)

    async def _saved_attempts(self, box: RedisMailbox, ids: list[int]) -> dict[int, bytes]:
        """The attempt counts saved for ``ids`` (as stored), those that have one."""
        if not ids:
            return {}
        values = await self.client.hmget(box.keys.attempts, [str(i) for i in ids])
        return {i: v for i, v in zip(ids, values, strict=True) if isinstance(v, bytes)}

    def _poison(
        self,
        box: RedisMailbox,
        sid: bytes,
        envelope: Envelope | None,
        poison: Poison | None,
        fields: dict[bytes, bytes] | None,
    ) -> None:
        """Send an undeliverable entry to the dead-letter stream and drop it from the actor's.

        An ask among them is answered through ``rejected``, if set, so its
        caller does not wait for a reply that will never come. An entry
        whose envelope id another entry of the mailbox holds leaves that
        one's count, dedupe marker and saved attempts alone.
        """
        owner = envelope is not None and envelope.id not in box.sids
        if owner and envelope is not None and envelope.correlation_id is not None:
            self._reject(envelope, poison)
        self.letters.append(dead_letter(box.name, sid, poison, fields))
        self.acks.append((box.keys, sid, envelope.id if owner and envelope is not None else None))
        if owner and envelope is not None and envelope.id in box.held:
            box.held.discard(envelope.id)
            box.forget(1)
        self.wake()

    def _reject(self, envelope: Envelope, poison: Poison | None) -> None:
        hook = self.rejected
        if hook is None:
            return
        try:
            hook(envelope, poison)
        except Exception as error:  # the letter is kept all the same; the caller times out
            logger.bind(event="redis_reject_failed", prefix=self.prefix).opt(exception=error).error(
                "redis (prefix {prefix}): failing the ask {id} of a dead-lettered entry raised",
                prefix=self.prefix,
                id=envelope.correlation_id,
            )

    def _repeat(
        self,
        box: RedisMailbox,
        sid: bytes,
        envelope: Envelope,
        fields: dict[bytes, bytes] | None,
        held: Envelope | None,
    ) -> None:
        """An entry repeats the envelope id of another entry the mailbox holds.

        Same body: a duplicate (a re-send after the dedupe marker expired, a
        copy by other code): acked and counted in ``duplicates``. Another
        body (or one that cannot be compared): ids are unique, so it is an
        :class:`EnvelopeIdConflict`, dead-lettered (and acked), never
        delivered in place of the one held nor dropped unseen. Either way
        the held entry's count, dedupe marker and saved attempts stay.
        """
        if held is None:
            held = box.holding(envelope.id)
        if held is not None and _same(held.body, envelope.body):
            self.duplicates += 1
            logger.bind(event="redis_duplicate_entry", prefix=self.prefix).debug(
                "redis (prefix {prefix}): entry {sid} for {actor} repeats envelope {id}: acked",
                prefix=self.prefix,
                sid=sid,
                actor=box.name,
                id=envelope.id,
            )
        else:
            detail = "with another body" if held is not None else "(its body cannot be compared)"
            conflict = EnvelopeIdConflict(box.name, envelope.id, detail)
            poison = Poison("invalid_message", conflict.to_info())
            self.letters.append(dead_letter(box.name, sid, poison, fields))
        self.acks.append((box.keys, sid, None))
        self.wake()

    async def _renew_and_claim(self) -> None:
        """Renew the leases of entries held here; claim entries idle past the lease elsewhere."""
        self._renewed = time.monotonic()
        idle_ms = int(self.lease * 1000)
        for box in list(self.boxes.values()):
            stream, group = box.keys.stream, self.group
            if box.sids:
                await self.client.xclaim(
                    stream, group, self.consumer, 0, list(box.sids.values()), justid=True
                )
            if not box.started or box.room <= 0:
                continue
            pending = await self.client.xpending_range(
                stream, group, "-", "+", box.room, idle=idle_ms
            )
            stale = [p for p in pending if p["consumer"] != self.consumer.encode()]
            if not stale:
                continue
            counts = {p["message_id"]: int(p["times_delivered"]) + 1 for p in stale}
            claimed = await self.client.xclaim(stream, group, self.consumer, idle_ms, list(counts))
            entries = cast("list[tuple[bytes, dict[bytes, bytes] | None]]", claimed)
            await self._deliver(box, entries, look_up=True, counts=cast("dict[bytes, int]", counts))


def _same(a: object, b: object) -> bool:
    """Whether two decoded bodies are equal; ``False`` when comparing them fails."""
    try:
        return bool(a == b)
    except Exception:  # a comparison that raises (nesting too deep) is no proof of a copy
        return False
