"""The writer task of RedisStore: one ordered stream of pipelined compare-and-set scripts."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

from greenroom.store._errors import StoreUnavailable, VersionConflict
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._redis_scripts import WRITE, encode_meta, key_bytes, live_key, record_key
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
        self.future: asyncio.Future[Versioned[object] | Tombstone | None] = (
            asyncio.get_running_loop().create_future()
        )


class RedisWriter:
    """Sends queued writes in pipelined batches of up to ``max_batch``, one batch at a time.

    Redis runs one connection's commands in order, so versions commit, and
    are published to the watch hub, in the order the writes were queued.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: bytes,
        error: type[redis.exceptions.RedisError],
        hub: WatchHub,
        label: str,
        max_batch: int,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._error = error
        self._hub = hub
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

    async def submit(self, op: Op) -> Versioned[object] | Tombstone | None:
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

    async def _send(self, batch: list[Op]) -> None:
        now = time.time()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for op in batch:
                    pipe.eval(
                        WRITE,
                        2,
                        record_key(self._prefix, op.scope, op.key),
                        live_key(self._prefix, op.scope),
                        key_bytes(op.key),
                        "" if op.expected is None else op.expected,
                        encode_meta((op.data, now, op.writer, op.trace_id)),
                        "d" if op.deleting else "w",
                    )
                answers = await pipe.execute(raise_on_error=False)
        except self._error as error:
            failure = StoreUnavailable(repr(self), "write", str(error) or repr(error))
            failure.__cause__ = error
            for op in batch:
                _settle(op.future, failure)
            return
        except Exception as error:  # not a redis error: fail the batch, keep the task
            for op in batch:
                _settle(op.future, StoreUnavailable(repr(self), "write", repr(error)))
            return
        except BaseException as error:  # the writer task itself is cancelled
            for op in batch:
                _settle(op.future, StoreUnavailable(repr(self), "write", repr(error)))
            raise
        for op, answer in zip(batch, answers, strict=True):
            try:
                outcome = self._outcome(op, answer, now)
            except Exception as error:  # a bug here must not kill the writer task
                outcome = StoreUnavailable(repr(self), "write", repr(error))
                outcome.__cause__ = error
            _settle(op.future, outcome)

    def _outcome(
        self, op: Op, answer: object, now: float
    ) -> Versioned[object] | Tombstone | BaseException | None:
        if isinstance(answer, BaseException):
            failure = StoreUnavailable(repr(self), "write", str(answer) or repr(answer))
            failure.__cause__ = answer
            return failure
        status, version = (int(part) for part in cast("list[int]", answer))
        if status == 0:
            return VersionConflict(op.scope, op.key, cast("int", op.expected), version)
        if status == 2:
            return None
        if self._hub.active:
            self._hub.publish(
                StateChanged(
                    scope=op.scope,
                    key=op.key,
                    version=version,
                    deleted=op.deleting,
                    value=op.checked,
                    updated_at=now,
                    updated_by=op.writer,
                    trace_id=op.trace_id,
                )
            )
        if op.deleting:
            return Tombstone(
                version=version, updated_at=now, updated_by=op.writer, trace_id=op.trace_id
            )
        return Versioned(
            value=op.checked,
            version=version,
            updated_at=now,
            updated_by=op.writer,
            trace_id=op.trace_id,
        )


def _settle(
    future: asyncio.Future[Versioned[object] | Tombstone | None],
    outcome: Versioned[object] | Tombstone | BaseException | None,
) -> None:
    if future.done():  # the caller was cancelled after the batch was sent
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
