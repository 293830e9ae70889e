"""A small HTTP/1.1 server on 127.0.0.1 for the HTTP tool tests.

It records every request it receives (so a test can assert a host got
nothing), and answers from a table of routes by path. Routes are coroutines
that write the whole response themselves, so a test can send any status,
redirect, endless body or nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec


class Request(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


Route = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """Write a complete response with a Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Route:
    async def route(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, status, body, headers)

    return route


def redirect(location: str, status: int = 302) -> Route:
    return reply(status, headers={"Location": location})


async def endless(request: Request, writer: asyncio.StreamWriter) -> None:
    """A body without a length that never ends: only a streaming reader stops."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 16384
    while True:
        writer.write(chunk)
        await writer.drain()


async def hang(request: Request, writer: asyncio.StreamWriter) -> None:
    """Read the request, then never answer."""
    await asyncio.Event().wait()


def drip(until: asyncio.Event) -> Route:
    """Headers at once, then one byte of body every 50 ms until ``until`` is set."""

    async def route(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        while not until.is_set():
            writer.write(b"x")
            await writer.drain()
            # The gap between two bytes: wait for the server to close, at most 50 ms.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), 0.05)

    return route


class LocalServer:
    """An HTTP server on 127.0.0.1 with a route table and a log of requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = asyncio.Event()  # set when the server closes: dripping routes stop

    @property
    def host(self) -> str:
        """``127.0.0.1:port``: the allowlist entry of this server."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        assert self._server is not None
        self.closing.set()
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head.decode("latin-1").split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {}
            for item in rest:
                if ":" in item:
                    key, value = item.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            request = Request(method=method, target=target, headers=headers, body=body)
            self.requests.append(request)
            route = self.routes.get(request.path, reply(404, b"no route"))
            await route(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: expected when it cuts a body off
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[LocalServer]:
    server = LocalServer()
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
