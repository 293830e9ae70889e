"""One ``redis-server`` for the whole test session, on a free loopback port, and key prefixes.

The server is started the first time a test asks for it (so a run without
Redis tests never starts one), in a temporary directory, without
persistence, and killed when the session's process exits. Each test keeps
apart from the others by its own key prefix. A missing binary skips the
test, or fails it under ``GREENROOM_REQUIRE_SERVERS`` (``need_server``).
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid

import redis

from tests.conftest import need_server

__all__ = ["free_port", "redis_prefix", "redis_url"]

_url: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(binary: str, directory: str) -> tuple[subprocess.Popen[str], int]:
    """Start the server, reading its log until it is ready; retry a port taken meanwhile."""
    log: list[str] = []
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        log = []
        for line in process.stdout:  # ends at EOF if the server exits
            log.append(line)
            if "Ready to accept connections" in line:
                # Drain the rest of its log in the background so it never blocks on a full pipe.
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return process, port
        process.wait()
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
