"""Runtime configuration and statistics: plain, validated data."""

from __future__ import annotations

import msgspec

from greenroom._errors import InvalidSpec

__all__ = ["RuntimeConfig", "RuntimeStatistics"]


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a :class:`Runtime` behaves. Times are in seconds.

    Attributes:
        ask_timeout: the timeout of an ``ask`` that gives none (default 5.0).
        start_timeout: the most ``spawn`` / ``ctx.spawn`` wait for the new
            actor's supervisor to start it, ``on_start`` included (default
            30.0); past it they raise :class:`AskTimeout`.
        max_message_bytes: the largest message, msgpack-encoded (default
            1 MiB); ``None`` means no limit and skips the encoding check.
        encode_messages: a debug setting: encode and decode every message
            even in memory, to catch unencodable bodies in tests (default off).
        idle_release: an actor with nothing to do gives its task back after
            between one and two of these periods (default 5.0); the next
            message starts a new one.
        shutdown_timeout: the most the whole tree gets to stop on exit
            (default 30.0).
        root_max_restarts, root_within: the root supervisor's intensity
            (default 10 restarts within 10 s).
        dead_letter_capacity: dead letters kept in memory (default 10,000).
        default_mailbox: the mailbox kind of actors that name none
            (default ``"memory"``).
    """

    ask_timeout: float = 5.0
    start_timeout: float = 30.0
    max_message_bytes: int | None = 1_048_576
    encode_messages: bool = False
    idle_release: float = 5.0
    shutdown_timeout: float = 30.0
    root_max_restarts: int = 10
    root_within: float = 10.0
    dead_letter_capacity: int = 10_000
    default_mailbox: str = "memory"

    def __post_init__(self) -> None:
        for field in (
            "ask_timeout",
            "start_timeout",
            "idle_release",
            "shutdown_timeout",
            "root_within",
        ):
            value = getattr(self, field)
            if not isinstance(value, int | float) or value <= 0:
                raise InvalidSpec(f"RuntimeConfig.{field} must be a number > 0, got {value!r}")
        if self.max_message_bytes is not None and (
            not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1
        ):
            raise InvalidSpec(
                f"RuntimeConfig.max_message_bytes must be an int >= 1 or None, "
                f"got {self.max_message_bytes!r}"
            )
        if not isinstance(self.root_max_restarts, int) or self.root_max_restarts < 0:
            raise InvalidSpec("RuntimeConfig.root_max_restarts must be an int >= 0")
        if not isinstance(self.dead_letter_capacity, int) or self.dead_letter_capacity < 1:
            raise InvalidSpec("RuntimeConfig.dead_letter_capacity must be an int >= 1")


class RuntimeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a runtime.

    Attributes:
        actors: registered actors (supervisors and pools included).
        tasks: actor tasks alive (busy or lingering).
        idle_tasks: tasks lingering with nothing to do.
        pending_asks: asks waiting for a reply.
        late_replies: replies dropped because their ask had given up.
        dead_letters: dead letters recorded since start.
    """

    actors: int
    tasks: int
    idle_tasks: int
    pending_asks: int
    late_replies: int
    dead_letters: int
