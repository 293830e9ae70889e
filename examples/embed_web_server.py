"""greenroom inside an existing asyncio web server: a request handler asks an actor.

Run it with ``uv run examples/embed_web_server.py``. It starts a tiny HTTP
server on 127.0.0.1 (plain ``asyncio.start_server``, standing in for the
aiohttp / Starlette / FastAPI app you already have), starts a greenroom
``Runtime`` in the same event loop, and serves ``GET /count/<name>`` by
asking a counter actor. The actor owns the counts: concurrent requests never
race on them, because it handles one message at a time. Then the script
plays a few requests against itself with httpx and prints the answers.

The pattern for your own app: open the runtime where the app starts
(a lifespan / startup hook), keep the refs, ``await ref.ask(...)`` in the
handlers, and close the runtime where the app stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

import greenroom as gr


class Hit(gr.Message):
    name: str


class Counter(gr.Actor):
    """Owns the counts; one message at a time, so no locks."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @gr.handler
    async def hit(self, msg: Hit) -> int:
        self.counts[msg.name] = self.counts.get(msg.name, 0) + 1
        return self.counts[msg.name]


def http_response(status: str, body: str) -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {len(data)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + data


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def make_handler(counter: gr.ActorRef) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers: not needed here
        parts = request_line.split()
        path = parts[1] if len(parts) > 1 else "/"
        if path.startswith("/count/") and len(path) > len("/count/"):
            try:
                count = await counter.ask(Hit(name=path.removeprefix("/count/")), timeout=2.0)
                writer.write(http_response("200 OK", f"{count}\n"))
            except gr.GreenroomError as exc:  # typed: timeout, stopped actor, ...
                writer.write(http_response("503 Service Unavailable", f"{exc}\n"))
        else:
            writer.write(http_response("404 Not Found", "try /count/<name>\n"))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return handle


async def main() -> None:
    async with gr.Runtime() as rt:
        counter = await rt.spawn(Counter, name="counter")
        server = await asyncio.start_server(make_handler(counter), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"serving on http://127.0.0.1:{port}")
        async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for name in ("ada", "ada", "grace"):
                answer = await client.get(f"/count/{name}")
                print(f"GET /count/{name} -> {answer.status_code} {answer.text.strip()}")
            burst = await asyncio.gather(*(client.get("/count/burst") for _ in range(20)))
            counts = sorted(int(r.text) for r in burst)
            no_race = counts == list(range(1, 21))
            print(f"20 concurrent requests counted 1..{counts[-1]}, no race: {no_race}")
            missing = await client.get("/nowhere")
            print(f"GET /nowhere -> {missing.status_code}")
    print("server and runtime stopped")


if __name__ == "__main__":
    asyncio.run(main())
