"""One ``redis-server`` for the whole test session, on a free loopback port, and key prefixes.

The server is started the first time a test asks for it (so a run without
Redis tests never starts one), in a temporary directory, without
persistence, and killed when the session's process exits. Each test keeps
apart from the others by its own key prefix. A missing binary skips the
test, or fails it under ``GREENROOM_REQUIRE_SERVERS`` (``need_server``).

A test that kills Redis uses a server of its own instead: :class:`OwnedRedis`.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from typing import IO

import redis

from tests.conftest import need_server

__all__ = ["OwnedRedis", "free_port", "redis_prefix", "redis_url"]

_url: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _drain(log: IO[str]) -> None:
    with log:  # closed at the end, when the server exits
        log.read()


def _launch(
    binary: str, port: int, directory: str, options: list[str]
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a server on ``port`` and read its log until it is ready or has exited.

    Returns the process (``returncode`` is ``None`` if it runs) and its log so far.
    """
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    log: list[str] = []
    for line in process.stdout:  # ends at EOF if the server exits
        log.append(line)
        if "Ready to accept connections" in line:
            # Drain the rest of its log in the background so it never blocks on a full pipe.
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            return process, log
    process.wait()
    process.stdout.close()
    return process, log


def _start(binary: str, directory: str) -> tuple[subprocess.Popen[str], int]:
    """Start the server, reading its log until it is ready; retry a port taken meanwhile."""
    log: list[str] = []
    for _ in range(5):
        port = free_port()
        process, log = _launch(binary, port, directory, ["--save", "", "--appendonly", "no"])
        if process.returncode is None:
            return process, port
    raise RuntimeError("redis-server did not start:\n" + "".join(log[-20:]))


def redis_url() -> str:
    """The URL of the session's redis-server, started on first use."""
    global _url
    if _url is not None:
        return _url
    binary = shutil.which("redis-server")
    if binary is None:
        need_server("redis-server not found")
        raise AssertionError("unreachable")
    directory = tempfile.mkdtemp(prefix="greenroom-redis-")
    process, port = _start(binary, directory)

    def stop() -> None:
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        for attempt in range(100):  # bounded: the log said ready, so this is at once
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if attempt == 99:
                    raise
    finally:
        client.close()
    _url = url
    return url


def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex}:"


class OwnedRedis:
    """A redis-server of one test's own, that the test may kill and restart.

    It keeps every write in its append-only file, synced before each reply
    (``--appendonly yes --appendfsync always``), in a temporary directory,
    so a restart on the same port and directory has every write the killed
    server acknowledged. Use as ``with OwnedRedis() as server:``; the server
    is killed and the directory removed on exit. Starting and restarting
    block until the server accepts connections (run them in a thread from
    async code so the event loop goes on meanwhile).
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            need_server("redis-server not found")
            raise AssertionError("unreachable")
        self._binary = binary
        self._directory = tempfile.mkdtemp(prefix="greenroom-owned-redis-")
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server's URL (the same across restarts)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server: on a free port the first time, on the same port after a kill."""
        if self.running:
            raise RuntimeError("the server is running already")
        options = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        log: list[str] = []
        for _ in range(1 if self.port else 5):  # a fresh port may be taken meanwhile: retry
            port = self.port or free_port()
            process, log = _launch(self._binary, port, self._directory, options)
            if process.returncode is None:
                self._process, self.port = process, port
                return
        raise RuntimeError("redis-server did not start:\n" + "".join(log[-20:]))

    def kill(self) -> None:
        """SIGKILL the server and reap it: no shutdown, no last save."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Start the killed server again, on the same port and data directory."""
        self.kill()
        self.start()

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> OwnedRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
