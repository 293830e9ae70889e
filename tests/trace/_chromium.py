"""A headless Chromium driven over the DevTools protocol (one websocket, flattened sessions)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from websockets.asyncio.client import ClientConnection, connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,800",
]
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: send commands, collect events."""

    def __init__(self, ws: ClientConnection, session: str, counter: itertools.count[int]) -> None:
        self._ws = ws
        self._session = session
        self._ids = counter
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send(
            json.dumps(
                {"id": msg_id, "method": method, "params": params, "sessionId": self._session}
            )
        )
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    async def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            reply = json.loads(await self._ws.recv())
            if "method" in reply:
                self.events.append(reply)
                if reply["method"] == method:
                    return reply

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )


@asynccontextmanager
async def open_page(binary: str, profile: Path) -> AsyncIterator[Page]:
    """Start Chromium with a fresh profile and attach to a new blank tab."""
    command = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    async with await anyio.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stderr is not None
            url = await _devtools_url(process.stderr)
            async with connect(url, max_size=None) as ws:
                counter = itertools.count(1)
                await ws.send(
                    json.dumps(
                        {"id": 0, "method": "Target.createTarget", "params": {"url": "about:blank"}}
                    )
                )
                target = await _reply(ws, 0)
                await ws.send(
                    json.dumps(
                        {
                            "id": -1,
                            "method": "Target.attachToTarget",
                            "params": {"targetId": target["targetId"], "flatten": True},
                        }
                    )
                )
                session = (await _reply(ws, -1))["sessionId"]
                yield Page(ws, session, counter)
        finally:
            process.terminate()
            with anyio.move_on_after(10, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()


async def _devtools_url(stream: anyio.abc.ByteReceiveStream) -> str:
    seen = b""
    async for chunk in stream:
        seen += chunk
        found = _LISTENING.search(seen.decode(errors="replace"))
        if found:
            return found.group(1)
    raise RuntimeError(f"chromium exited before it listened: {seen.decode(errors='replace')}")


async def _reply(ws: ClientConnection, msg_id: int) -> dict[str, Any]:
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == msg_id:
            if "error" in reply:
                raise RuntimeError(str(reply["error"]))
            result: dict[str, Any] = reply["result"]
            return result
