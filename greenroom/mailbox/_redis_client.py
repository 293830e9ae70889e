"""The optional ``redis`` dependency, imported only when a Redis backend is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio
    import redis.exceptions

__all__ = ["connect", "redis_error"]

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


def connect(client_or_url: redis.asyncio.Redis | str) -> tuple[redis.asyncio.Redis, bool]:
    """A client for ``client_or_url`` and whether the caller owns (and closes) it.

    A client given must answer bytes (``decode_responses=False``, the default).
    """
    _require()
    import redis.asyncio

    from greenroom._errors import UsageError

    if isinstance(client_or_url, str):
        return redis.asyncio.Redis.from_url(client_or_url), True
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
