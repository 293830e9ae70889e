"""The writer task of RedisStore: one ordered stream of pipelined compare-and-set scripts."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, cast

from greenroom.mailbox._redis_client import drop_idle_connections
from greenroom.store._errors import StoreUnavailable, VersionConflict
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._redis_changes import ChangeFeed, Outcome, settle
from greenroom.store._redis_scripts import (
    WRITE,
    WRITE_SHA,
    changes_key,
    encode_meta,
    key_bytes,
    live_key,
    record_key,
)
from greenroom.store._watch import StateChanged, WatchHub

if TYPE_CHECKING:
    import redis.asyncio
    import redis.exceptions

__all__ = ["Op", "RedisWriter"]


class Op:
    """One queued write or delete, and the future its caller waits on."""

    __slots__ = (
        "checked",
        "data",
        "deleting",
        "expected",
        "future",
        "key",
        "scope",
        "trace_id",
        "writer",
    )

    def __init__(
        self,
        scope: str,
        key: str,
        data: bytes | None,
        checked: object,
        expected: int | None,
        writer: str | None,
        trace_id: str | None,
    ) -> None:
        self.scope = scope
        self.key = key
        self.data = data  # None: a delete
        self.deleting = data is None
        self.checked = checked
        self.expected = expected
        self.writer = writer
        self.trace_id = trace_id
        self.future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()


class RedisWriter:
    """Sends queued writes in pipelined batches of up to ``max_batch``, one batch at a time.

    Redis runs one connection's commands in order, so versions commit in the
    order the writes were queued; each committed write is handed to the
    change feed in that order, which publishes it to the watch hub (see
    :mod:`greenroom.store._redis_changes`). ``change_log`` is the length of
    each scope's change log (0: none).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: bytes,
        error: type[redis.exceptions.RedisError],
        hub: WatchHub,
        feed: ChangeFeed,
        label: str,
        max_batch: int,
        change_log: int,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._error = error
        self._hub = hub
        self._noscript = _noscript_error()
        self._feed = feed
        self._change_log = change_log
        self._label = label
        self._max_batch = max_batch
        self._queue: list[Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def close(self) -> None:
        """Send what is queued, then stop the task."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def __repr__(self) -> str:
        return self._label

    async def submit(self, op: Op) -> Outcome:
        """Queue ``op`` and wait for its outcome (its result, or its error raised)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self._label} writer"
            )
        self._queue.append(op)
        self._wake.set()
        return await op.future  # cancelling the caller cancels the future: withdrawn if unsent

    async def _run(self) -> None:
        """The writer task: send the queue in pipelined batches, in order, until closed."""
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
            batch = [op for op in self._queue[: self._max_batch] if not op.future.done()]
            del self._queue[: self._max_batch]
            if batch:
                await self._send(batch)

    async def _pipeline(self, batch: list[Op], metas: list[bytes], script: str) -> list[Any]:
        """Run the write script for ``batch`` in one round trip (``script``: EVAL or EVALSHA)."""
        body = WRITE if script == "EVAL" else WRITE_SHA
        async with self._client.pipeline(transaction=False) as pipe:
            for op, meta in zip(batch, metas, strict=True):
                pipe.execute_command(
                    script,
                    body,
                    3,
                    record_key(self._prefix, op.scope, op.key),
                    live_key(self._prefix, op.scope),
                    changes_key(self._prefix, op.scope),
                    key_bytes(op.key),
                    "" if op.expected is None else op.expected,
                    meta,
                    "d" if op.deleting else "w",
                    self._change_log,
                    self._feed.origin,
                )
            return await pipe.execute(raise_on_error=False)

    async def _send(self, batch: list[Op]) -> None:
        now = time.time()
        metas = [encode_meta((op.data, now, op.writer, op.trace_id)) for op in batch]
        self._feed.sending()
        try:
            await self._send_batch(batch, metas, now)
        finally:
            self._feed.sent()

    async def _send_batch(self, batch: list[Op], metas: list[bytes], now: float) -> None:
        try:
            answers = await self._pipeline(batch, metas, "EVALSHA")
            again = [at for at, answer in enumerate(answers) if isinstance(answer, self._noscript)]
            if again:  # the server lost its script cache (restarted, SCRIPT FLUSH): send it
                resent = await self._pipeline(
                    [batch[at] for at in again], [metas[at] for at in again], "EVAL"
                )
                for at, answer in zip(again, resent, strict=True):
                    answers[at] = answer
        except self._error as error:
            failure = StoreUnavailable(repr(self), "write", str(error) or repr(error))
            failure.__cause__ = error
            for op in batch:
                settle(op.future, failure)
            await drop_idle_connections(self._client, error)
            return
        except Exception as error:  # not a redis error: fail the batch, keep the task
            for op in batch:
                settle(op.future, StoreUnavailable(repr(self), "write", repr(error)))
            return
        except BaseException as error:  # the writer task itself is cancelled
            for op in batch:
                settle(op.future, StoreUnavailable(repr(self), "write", repr(error)))
            raise
        for op, answer in zip(batch, answers, strict=True):
            try:
                self._commit(op, answer, now)
            except Exception as error:  # a bug here must not kill the writer task
                failure = StoreUnavailable(repr(self), "write", repr(error))
                failure.__cause__ = error
                settle(op.future, failure)

    def _commit(self, op: Op, answer: object, now: float) -> None:
        """Settle ``op`` from its script's answer; a committed write goes through the feed."""
        if isinstance(answer, BaseException):
            failure = StoreUnavailable(repr(self), "write", str(answer) or repr(answer))
            failure.__cause__ = answer
            settle(op.future, failure)
            return
        status, version, *entry = cast("bytes", answer).split(b" ")
        if status == b"0":
            current = int(version)
            settle(op.future, VersionConflict(op.scope, op.key, cast("int", op.expected), current))
            return
        if status == b"2":
            settle(op.future, None)
            return
        new = int(version)
        seq = int(entry[0].partition(b"-")[2]) if entry else None
        change = None
        if self._hub.active:
            change = StateChanged(
                scope=op.scope,
                key=op.key,
                version=new,
                deleted=op.deleting,
                value=op.checked,
                updated_at=now,
                updated_by=op.writer,
                trace_id=op.trace_id,
            )
        record: Outcome
        if op.deleting:
            record = Tombstone(
                version=new, updated_at=now, updated_by=op.writer, trace_id=op.trace_id
            )
        else:
            record = Versioned(
                value=op.checked,
                version=new,
                updated_at=now,
                updated_by=op.writer,
                trace_id=op.trace_id,
            )
        self._feed.local(op.scope, seq, change, op.future, record)


def _noscript_error() -> type[Exception]:
    """redis-py's error for EVALSHA of a script the server does not have (imported late)."""
    import redis.exceptions

    return redis.exceptions.NoScriptError
