"""A loopback HTTP server that answers each request with scripted raw bytes, for hostile answers.

The ScriptedModelServer speaks the protocol correctly; this one says whatever a
test hands it: invalid UTF-8, a wrong Content-Length, a stream cut mid-event,
any header. Each connection serves one request, then the server closes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["RawServer", "chunked", "response"]

_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


def response(
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str = "application/json",
    length: int | None = None,
) -> bytes:
    """A whole HTTP/1.1 response; ``length`` overrides the Content-Length sent."""
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunked(events: Iterable[bytes], *, finish: bool = True) -> bytes:
    """A 200 event stream in chunked transfer encoding; ``finish=False`` cuts it (no last chunk)."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = b"".join(f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events if e)
    return head + body + (b"0\r\n\r\n" if finish else b"")


class RawServer:
    """Answers the n-th request with the n-th scripted bytes, on 127.0.0.1."""

    def __init__(self) -> None:
        self._answers: deque[bytes] = deque()
        self._port: int | None = None
        self._stack: AsyncExitStack | None = None
        self.served = 0

    @property
    def base_url(self) -> str:
        assert self._port is not None, "use `async with RawServer()`"
        return f"http://127.0.0.1:{self._port}/v1"

    def answer(self, *raw: bytes) -> None:
        self._answers.extend(raw)

    async def __aenter__(self) -> RawServer:
        async with AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            await stack.enter_async_context(listener)
            self._port = listener.extra(SocketAttribute.local_port)
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            group.start_soon(listener.serve, self._connection)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            try:
                head = await reader.receive_until(b"\r\n\r\n", 1 << 16)
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.receive_exactly(length)
                raw = self._answers.popleft() if self._answers else response(500, b"{}")
                self.served += 1
                await stream.send(raw)
            except (*_CLOSED, anyio.IncompleteRead, anyio.DelimiterNotFound):
                return
