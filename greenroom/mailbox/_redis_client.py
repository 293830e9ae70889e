"""The optional ``redis`` dependency, imported only when a Redis backend is used."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio
    import redis.exceptions

__all__ = ["connect", "drop_idle_connections", "redis_error"]

_EXTRA = "pip install 'greenroom[redis]'"


def _require() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError as error:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(f"greenroom's Redis backends need the redis client: {_EXTRA}") from error


def redis_error() -> type[redis.exceptions.RedisError]:
    """The base class of every error the redis client raises."""
    _require()
    import redis.exceptions

    return redis.exceptions.RedisError


SOCKET_TIMEOUT = 5.0  # seconds a connect, or a command's reply, may take
CONNECT_TIMEOUT = 5.0


def connect(client_or_url: redis.asyncio.Redis | str) -> tuple[redis.asyncio.Redis, bool]:
    """A client for ``client_or_url`` and whether the caller owns (and closes) it.

    A client made from a URL has finite socket timeouts (``SOCKET_TIMEOUT``,
    ``CONNECT_TIMEOUT``; redis-py 5 waits forever by default), so a server
    that stops answering becomes an error rather than a hang; and it does
    not retry a failed command itself: the callers translate the failure
    at once (the mailbox pump retries with its own backoff), and a script
    cut off after the server ran it is not run twice.

    A client given is used as configured; it must answer bytes
    (``decode_responses=False``, the default).
    """
    _require()
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from greenroom._errors import UsageError

    if isinstance(client_or_url, str):
        client = redis.asyncio.Redis.from_url(
            client_or_url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        return client, True
    if not isinstance(client_or_url, redis.asyncio.Redis):
        raise UsageError(
            f"expected a redis URL or a redis.asyncio.Redis, got {type(client_or_url).__name__}"
        )
    if client_or_url.get_connection_kwargs().get(  # type: ignore[no-untyped-call]
        "decode_responses"
    ):
        raise UsageError(
            "the redis client must answer bytes: create it with decode_responses=False"
        )
    return client_or_url, False


async def drop_idle_connections(client: redis.asyncio.Redis, error: BaseException) -> None:
    """After a connection error, close the pool's idle connections too.

    When Redis restarts, every pooled connection is dead, and each would
    fail the next command sent on it; closing them makes the next command
    open a fresh one. Best effort: they reconnect on use anyway.
    """
    import redis.exceptions

    if not isinstance(error, redis.exceptions.ConnectionError | OSError):
        return
    with contextlib.suppress(Exception):
        await client.connection_pool.disconnect(inuse_connections=False)
