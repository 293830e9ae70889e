"""Replies to asks that crossed processes: one stream per asking node.

The node that answers (whose runtime ran the handler) writes the result, or
the failure as plain data, to ``reply:{<asking node>}``; the asking node
reads its own stream and settles the waiting ask. Results travel as msgpack
and are decoded into the type the caller asked for, if any.

Any entry of a reply stream, whatever bytes its fields hold, becomes the
waiting caller's value or a typed error (:class:`RemoteError`
``InvalidReply`` for one that does not decode), at once; nothing in an entry
can raise in the reader task, stop it, or leave a caller waiting past the
reply that names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import msgspec

from greenroom._errors import (
    ActorStopped,
    AskTimeout,
    ErrorInfo,
    HandlerError,
    UnknownMessage,
    UsageError,
)
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
_decode_any = msgspec.msgpack.Decoder().decode
_ID_END = 1 << 63


def _typed_decoder(returns: Any) -> Callable[[bytes], Any]:
    try:
        return msgspec.msgpack.Decoder(returns).decode
    except Exception as exc:  # TypeError: a type msgspec does not support
        raise UsageError(
            f"an ask's returns= must be a type msgspec can decode (int, a Struct, "
            f"list[str], ...), got {returns!r}: {exc}"
        ) from exc


def _type_name(returns: Any) -> str:
    return getattr(returns, "__qualname__", None) or repr(returns)


def _correlation_of(fields: object) -> int | None:
    """The ask a reply entry names: its field ``c``, decimal digits of a 63-bit id."""
    if not isinstance(fields, dict):
        return None
    raw = fields.get(b"c")
    if not isinstance(raw, bytes) or not 0 < len(raw) <= 19 or not raw.isdigit():
        return None
    value = int(raw)
    return value if value < _ID_END else None


def _shown(fields: object) -> str:
    try:
        text = repr(fields)
    except Exception:  # a repr that fails is still no reason to stop the reader
        text = f"a {type(fields).__name__}"
    return text if len(text) <= 200 else text[:200] + "..."


class Replies:
    """The asks this node waits on, and the replies it owes other nodes.

    Reading is total: whatever an entry of the reply stream holds (any bytes
    in any field, fields missing), it settles the ask it names with its value
    or a typed error (:class:`RemoteError` ``InvalidReply`` when it cannot be
    decoded), at once; an entry that names no ask waiting here is counted
    (``late``, or ``malformed`` when it names none at all: its caller, if
    any, gets :class:`AskTimeout` at its timeout) and the reader reads on.
    """

    def __init__(self, client: redis.asyncio.Redis, keys: Keys, node: str, maxlen: int) -> None:
        self._client = client
        self._keys = keys
        self.node = node
        self._stream = keys.reply(node)
        self._maxlen = maxlen
        self._waiting: dict[int, tuple[asyncio.Future[Any], type | None]] = {}
        self._decoders: dict[Any, Callable[[bytes], Any]] = {None: _decode_any}
        self._outgoing: list[tuple[str, dict[bytes, bytes]]] = []
        self._wake = asyncio.Event()
        self.late = 0  # replies to asks no longer waited on
        self.malformed = 0  # entries naming no ask (no readable correlation id)
        self.closing = False  # the loops end at their next turn

    # -- the asking side --------------------------------------------------

    def expect(self, correlation_id: int, returns: type | None) -> asyncio.Future[Any]:
        """A future for the reply to ask ``correlation_id``, decoded as ``returns``.

        Raises:
            UsageError: msgspec cannot decode into ``returns``.
        """
        self._decoder_of(returns)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = (future, returns)
        return future

    def _decoder_of(self, returns: type | None) -> Callable[[bytes], Any]:
        try:
            return self._decoders[returns]
        except KeyError:
            pass
        except TypeError:  # an unhashable annotation: not cached
            return _typed_decoder(returns)
        decoder = self._decoders[returns] = _typed_decoder(returns)
        return decoder

    def forget(self, correlation_id: int) -> None:
        self._waiting.pop(correlation_id, None)

    def fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(error)

    def _settle(self, fields: object) -> None:
        """Settle the ask ``fields`` answer, with its value or a typed error. Never raises."""
        correlation_id = _correlation_of(fields)
        if correlation_id is None:
            self.malformed += 1
            logger.bind(event="reply_malformed", node=self.node).warning(
                "greenroom: a reply entry on {stream} names no ask (expected a field 'c' of "
                "decimal digits), skipped: {found}",
                stream=self._stream,
                found=_shown(fields),
            )
            return
        entry = self._waiting.pop(correlation_id, None)
        if entry is None or entry[0].done():
            self.late += 1
            return
        future, returns = entry
        # A dict: _correlation_of read a field of it.
        ok, outcome = self._outcome(correlation_id, cast("dict[Any, Any]", fields), returns)
        if ok:
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    def _outcome(
        self, correlation_id: int, fields: dict[Any, Any], returns: type | None
    ) -> tuple[bool, Any]:
        """``(True, value)`` or ``(False, error)`` for a reply entry. Never raises."""
        expected = "msgpack" if returns is None else f"msgpack of {_type_name(returns)}"
        try:
            if b"e" in fields:
                expected = "an encoded failure"
                return False, _decode_failure(fields[b"e"]).error()
            if b"r" not in fields:
                return False, self._invalid(
                    correlation_id, "a result 'r' or an error 'e'", "neither field"
                )
            return True, self._decoder_of(returns)(fields[b"r"])
        except Exception as exc:  # any bytes: msgspec lets more than MsgspecError out
            found = "nesting too deep" if isinstance(exc, RecursionError) else f"{exc!s:.300}"
            return False, self._invalid(correlation_id, expected, found)

    def _invalid(self, correlation_id: int, expected: str, found: str) -> RemoteError:
        return RemoteError(
            self.node,
            "InvalidReply",
            f"the reply to ask {correlation_id} on {self._stream} cannot be decoded: expected "
            f"{expected}, found {found}; the answering node may run another greenroom version "
            "or return another type than `returns=`, or other code wrote to the stream",
        )

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
                    try:
                        self._settle(fields)
                    except Exception as error:  # never: _settle is total; the reader reads on
                        logger.bind(event="reply_failed", node=self.node).opt(
                            exception=error
                        ).error("greenroom: settling reply {} failed", sid)

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
