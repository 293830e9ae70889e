"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

Real HTTP/1.1 on a real socket: JSON bodies with ``Content-Length``,
streams as server-sent events in chunked transfer encoding, keep-alive
connections. Each request to ``.../chat/completions`` takes the next
scripted answer, in order; every request is recorded.

::

    async with ScriptedModelServer() as server:
        server.reply("hello")                                   # a plain reply
        server.call_tools(ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}))
        server.fail(429, retry_after=1)                         # then a rate limit
        client = OpenAIClient(ModelConfig(model="m", base_url=server.base_url))
        ...
        assert server.requests[0].json()["model"] == "m"

A request that finds the script empty gets a 500 and is counted in
:attr:`ScriptedModelServer.unscripted`, so a test can assert none came.
The server runs on the caller's event loop and is stopped, with every
connection closed, when the ``async with`` block ends.
"""

from __future__ import annotations

import http
import time
from collections import deque
from contextlib import AsyncExitStack
from types import TracebackType

import anyio
import msgspec
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from greenroom.testing._script import (
    RecordedRequest,
    ScriptedError,
    ScriptedMalformed,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
    ScriptItem,
    completion_body,
    error_body,
    malformed_event,
    stream_events,
)

__all__ = ["ScriptedModelServer"]

_MAX_HEAD = 64 * 1024
_DEFAULT_USAGE = ScriptedUsage()
_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class _Request(msgspec.Struct):
    model: str = "scripted"
    stream: bool = False
    stream_options: dict[str, object] | None = None


class ScriptedModelServer:
    """An OpenAI-compatible chat-completions server that answers from a script.

    Args:
        host: the address to listen on (default ``"127.0.0.1"``).

    Use it as an async context manager; :attr:`base_url` is valid inside.
    """

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._script: deque[ScriptItem] = deque()
        self._port: int | None = None
        self._stack: AsyncExitStack | None = None
        self._served = 0
        self.requests: list[RecordedRequest] = []
        """Every request received, in order (chat completions and others)."""
        self.unscripted = 0
        """Chat-completion requests that found the script empty (each got a 500)."""

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/v1``, for ``ModelConfig.base_url``."""
        if self._port is None:
            raise RuntimeError("the server is not running: use `async with ScriptedModelServer()`")
        return f"http://{self._host}:{self._port}/v1"

    def push(self, *items: ScriptItem) -> None:
        """Append answers to the script, in order."""
        self._script.extend(items)

    def reply(
        self, content: str, *, usage: ScriptedUsage | None = _DEFAULT_USAGE, fragment: int = 4
    ) -> None:
        """Script a plain text reply."""
        self.push(ScriptedReply(content=content, usage=usage, fragment=fragment))

    def call_tools(
        self, *calls: ScriptedToolCall, usage: ScriptedUsage | None = _DEFAULT_USAGE
    ) -> None:
        """Script one answer with these tool calls (parallel calls when several)."""
        self.push(ScriptedReply(tool_calls=calls, usage=usage))

    def fail(self, status: int = 500, *, retry_after: float | None = None) -> None:
        """Script an error answer with ``status`` (and a ``Retry-After`` header, if given)."""
        self.push(ScriptedError(status=status, retry_after=retry_after))

    def malformed(self, body: str = ScriptedMalformed().body) -> None:
        """Script a 200 answer whose body is not valid chat-completion JSON."""
        self.push(ScriptedMalformed(body=body))

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        return len(self._script)

    async def __aenter__(self) -> ScriptedModelServer:
        async with AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=0)
            await stack.enter_async_context(listener)
            self._port = listener.extra(SocketAttribute.local_port)
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)  # runs first on exit: stop serving
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
        self._port = None
        if stack is not None:
            await stack.aclose()

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            try:
                while await self._exchange(stream, reader):
                    pass
            except (*_CLOSED, anyio.IncompleteRead, anyio.DelimiterNotFound, ValueError):
                return

    async def _exchange(self, stream: SocketStream, reader: BufferedByteReceiveStream) -> bool:
        """Serve one request; whether the connection stays open for another."""
        head = (await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.receive_exactly(int(headers.get("content-length", "0")))
        self.requests.append(RecordedRequest(method=method, path=path, headers=headers, body=body))
        keep = headers.get("connection", "").lower() != "close"
        if method == "POST" and path.split("?")[0].endswith("/chat/completions"):
            return await self._chat(stream, body) and keep
        if method == "GET" and path.split("?")[0].endswith("/models"):
            models = {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
            await _send(stream, 200, msgspec.json.encode(models))
        else:
            await _send(stream, 404, _error(f"no route for {method} {path}"))
        return keep

    async def _chat(self, stream: SocketStream, body: bytes) -> bool:
        try:
            request = msgspec.json.decode(body, type=_Request)
        except msgspec.DecodeError as e:
            await _send(stream, 400, _error(f"request body is not a chat request: {e}"))
            return True
        if not self._script:
            self.unscripted += 1
            await _send(stream, 500, _error("ScriptedModelServer: no scripted answer left"))
            return True
        item = self._script.popleft()
        self._served += 1
        if item.delay:
            await anyio.sleep(item.delay)
        if isinstance(item, ScriptedError):
            extra = dict(item.headers)
            if item.retry_after is not None:
                extra["Retry-After"] = f"{item.retry_after:g}"
            await _send(stream, item.status, error_body(item), extra)
            return True
        if isinstance(item, ScriptedMalformed):
            if request.stream:
                await _send_stream(stream, [malformed_event(item.body)], None)
            else:
                await _send(stream, 200, item.body.encode())
            return True
        created = int(time.time())
        if not request.stream:
            payload = completion_body(item, request.model, self._served, created)
            if item.truncate_after is not None:
                await _send(stream, 200, payload, cut=item.truncate_after)
                return False
            await _send(stream, 200, payload)
            return True
        include_usage = bool((request.stream_options or {}).get("include_usage"))
        events = stream_events(item, request.model, self._served, created, include_usage)
        await _send_stream(stream, events, item.truncate_after)
        return item.truncate_after is None


def _error(message: str) -> bytes:
    return msgspec.json.encode({"error": {"message": message, "type": "invalid_request_error"}})


def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {status} {phrase}\r\n"


async def _send(
    stream: SocketStream,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    cut: int | None = None,
) -> None:
    head = _status_line(status) + "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    await stream.send(head.encode("latin-1") + b"\r\n" + (body if cut is None else body[:cut]))


async def _send_stream(stream: SocketStream, events: list[bytes], cut: int | None) -> None:
    head = _status_line(200) + "Content-Type: text/event-stream; charset=utf-8\r\n"
    head += "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    await stream.send(head.encode("latin-1"))
    for event in events if cut is None else events[:cut]:
        await stream.send(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    if cut is None:
        await stream.send(b"0\r\n\r\n")


async def _read_chunked(reader: BufferedByteReceiveStream) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.receive_until(b"\r\n", 1024)).split(b";")[0], 16)
        if size == 0:
            await reader.receive_until(b"\r\n", _MAX_HEAD)  # trailers end with an empty line
            return b"".join(parts)
        parts.append(await reader.receive_exactly(size))
        await reader.receive_exactly(2)
