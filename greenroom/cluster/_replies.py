"""Replies to asks that crossed processes: one stream per asking node.

The node that answers (whose runtime ran the handler) writes the result, or
the failure as plain data, to ``reply:{<asking node>}``; the asking node
reads its own stream and settles the waiting ask. Results travel as msgpack
and are decoded into the type the caller asked for, if any.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

import msgspec

from greenroom._errors import ActorStopped, AskTimeout, ErrorInfo, HandlerError, UnknownMessage
from greenroom.cluster._errors import RemoteError
from greenroom.cluster._keys import Keys
from greenroom.mailbox._redis_client import redis_error
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    import redis.asyncio

    from greenroom.mailbox import Envelope

__all__ = ["Failure", "Replies"]

_encode = msgspec.msgpack.Encoder().encode


class Failure(msgspec.Struct, array_like=True, frozen=True):
    """A failed ask as plain data; rebuilt into the matching greenroom error."""

    kind: str
    actor: str
    message_type: str
    error_type: str
    error_message: str
    attempts: int = 1
    accepted: tuple[str, ...] = ()

    @classmethod
    def of(cls, envelope: Envelope, error: BaseException) -> Failure:
        message_type = type(envelope.body).__qualname__
        if isinstance(error, HandlerError):
            return cls(
                "HandlerError",
                error.actor,
                error.message_type,
                error.error_type,
                error.error_message,
                error.attempts,
            )
        if isinstance(error, UnknownMessage):
            return cls(
                "UnknownMessage", error.actor, error.message_type, "", "", accepted=error.accepted
            )
        if isinstance(error, ActorStopped):
            return cls("ActorStopped", envelope.recipient, message_type, "", str(error))
        info = ErrorInfo.from_exception(error, with_traceback=False)
        return cls("other", envelope.recipient, message_type, info.type, info.message)

    def error(self) -> BaseException:
        """The error to raise in the asking process."""
        if self.kind == "HandlerError":
            info = ErrorInfo(type=self.error_type, message=self.error_message)
            return HandlerError(self.actor, self.message_type, info, self.attempts)
        if self.kind == "UnknownMessage":
            return UnknownMessage(self.actor, self.message_type, self.accepted)
        if self.kind == "ActorStopped":
            return ActorStopped(self.actor, self.message_type)
        return RemoteError(self.actor, self.error_type, self.error_message)


_decode_failure = msgspec.msgpack.Decoder(Failure).decode


class Replies:
    """The asks this node waits on, and the replies it owes other nodes."""

    def __init__(self, client: redis.asyncio.Redis, keys: Keys, node: str, maxlen: int) -> None:
        self._client = client
        self._keys = keys
        self.node = node
        self._stream = keys.reply(node)
        self._maxlen = maxlen
        self._waiting: dict[int, tuple[asyncio.Future[Any], type | None]] = {}
        self._outgoing: list[tuple[str, dict[bytes, bytes]]] = []
        self._wake = asyncio.Event()
        self.late = 0
        self.closing = False  # the loops end at their next turn

    # -- the asking side --------------------------------------------------

    def expect(self, correlation_id: int, returns: type | None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = (future, returns)
        return future

    def forget(self, correlation_id: int) -> None:
        self._waiting.pop(correlation_id, None)

    def fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(error)

    def _settle(self, fields: dict[bytes, bytes]) -> None:
        try:
            correlation_id = int(fields[b"c"])
        except (KeyError, ValueError):
            logger.warning("greenroom: a malformed reply entry was skipped: {}", fields)
            return
        entry = self._waiting.pop(correlation_id, None)
        if entry is None or entry[0].done():
            self.late += 1
            return
        future, returns = entry
        try:
            if b"e" in fields:
                future.set_exception(_decode_failure(fields[b"e"]).error())
            elif returns is None:
                future.set_result(msgspec.msgpack.decode(fields[b"r"]))
            else:
                future.set_result(msgspec.msgpack.decode(fields[b"r"], type=returns))
        except (msgspec.MsgspecError, KeyError) as exc:
            future.set_exception(RemoteError(self.node, "InvalidReply", str(exc)))

    async def read(self) -> None:
        """Read this node's reply stream until cancelled; retry while Redis is away."""
        # From the start, not "$": a reply may land before the first read. The
        # stream is this node's alone; entries read are deleted.
        last: bytes | str = "0-0"
        delay = 0.05
        while not self.closing:
            try:
                reply = cast(
                    "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]",
                    await self._client.xread({self._stream: last}, count=512, block=1000),
                )
                read = [sid for _stream, entries in reply or () for sid, _ in entries]
                if read:
                    await self._client.xdel(self._stream, *read)
            except redis_error() as error:
                if delay == 0.05:  # once per outage, not once per retry
                    logger.warning("greenroom: reading replies failed ({}), retrying", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            for _stream, entries in reply or ():
                for sid, fields in entries:
                    last = sid
                    self._settle(fields)

    # -- the answering side -----------------------------------------------

    def send(self, envelope: Envelope, result: object, error: BaseException | None) -> None:
        """Queue the reply to an ask made by ``envelope.reply_to`` (a runtime's reply sink)."""
        fields: dict[bytes, bytes] = {b"c": str(envelope.correlation_id).encode()}
        if error is None:
            try:
                fields[b"r"] = _encode(result)
            except (TypeError, ValueError, OverflowError) as exc:
                error = RemoteError(envelope.recipient, "ReplyNotEncodable", str(exc))
        if error is not None:
            fields[b"e"] = _encode(Failure.of(envelope, error))
        self._outgoing.append((self._keys.reply(str(envelope.reply_to)), fields))
        self._wake.set()

    async def write(self) -> None:
        """Write queued replies in pipelines until cancelled; keep them while Redis is away."""
        delay = 0.05
        while not self.closing:
            await self._wake.wait()
            self._wake.clear()
            outgoing, self._outgoing = self._outgoing, []
            if not outgoing:
                continue
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for stream, fields in outgoing:
                        pipe.xadd(stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                    await pipe.execute()
                delay = 0.05
            except redis_error() as error:
                if delay == 0.05:
                    logger.warning("greenroom: writing replies failed ({}), retrying", error)
                self._outgoing[:0] = outgoing
                self._wake.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def timeout(self, recipient: str, body: object, timeout: float) -> AskTimeout:
        return AskTimeout(recipient, type(body).__qualname__, timeout)
