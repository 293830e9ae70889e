"""Errors of the cluster layer.

::

    UsageError
    └── UnknownPool        no node registered a pool of that name
    RuntimeFailure
    └── RemoteError        a remote actor failed in a way with no local error type
"""

from __future__ import annotations

from greenroom._errors import RuntimeFailure, UsageError

__all__ = ["RemoteError", "UnknownPool"]


class UnknownPool(UsageError):
    """No node of the system hosts (or ever hosted) a keyed pool of this name."""

    def __init__(self, pool: str, system: str) -> None:
        super().__init__(
            f"no node of {system!r} hosts a pool called {pool!r}; "
            "start it with Node.host_pool on some node first"
        )
        self.pool = pool
        self.system = system


class RemoteError(RuntimeFailure):
    """An ask answered by another process failed with an error that has no local type.

    ``error_type`` and ``error_message`` describe it as the remote side saw it.
    """

    def __init__(self, actor: str, error_type: str, error_message: str) -> None:
        super().__init__(f"{actor} failed remotely: {error_type}: {error_message}")
        self.actor = actor
        self.error_type = error_type
        self.error_message = error_message
