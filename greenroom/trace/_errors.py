"""The trace subsystem's errors, under greenroom's one error tree::

RuntimeFailure
└── TraceStoreUnavailable   the trace database cannot be opened, read or written
"""

from __future__ import annotations

from greenroom._errors import RuntimeFailure

__all__ = ["TraceStoreUnavailable"]


class TraceStoreUnavailable(RuntimeFailure):
    """The trace database could not be opened, read or written.

    ``path`` names the database, ``operation`` what was tried and
    ``reason`` what sqlite (or the schema check) said.
    """

    def __init__(self, path: str, operation: str, reason: str) -> None:
        super().__init__(
            f"trace store {path!r} failed to {operation}: {reason}; "
            "check the path, the disk and that no other program holds the file locked"
        )
        self.path = path
        self.operation = operation
        self.reason = reason
