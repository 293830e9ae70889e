"""The errors of the store, placed in greenroom's one error tree::

    GreenroomError
    ├── UsageError
    │   ├── InvalidScope           a scope that cannot work (no owner, a type msgspec cannot encode)
    │   ├── InvalidKey             a key that is not a non-empty str
    │   ├── InvalidValue           a value that does not match its scope's type (nothing written)
    │   └── ContractViolation      an access or declaration the scope contracts do not allow
    └── RuntimeFailure
        ├── VersionConflict        a compare-and-set found another version (nothing written)
        ├── StoredValueInvalid     a stored value does not decode into its scope's type
        ├── StoreClosed            the store was closed
        └── StoreUnavailable       the backend failed (an sqlite error, chained with ``from``)

Every error keeps the facts of its message as attributes, and crosses a
mailbox as plain data through :meth:`GreenroomError.to_info`.
"""

from __future__ import annotations

from greenroom._errors import RuntimeFailure, UsageError

__all__ = [
    "ContractViolation",
    "InvalidKey",
    "InvalidScope",
    "InvalidValue",
    "StoreClosed",
    "StoreUnavailable",
    "StoredValueInvalid",
    "VersionConflict",
]


class InvalidScope(UsageError):
    """A scope that cannot work, found when it is constructed."""

    def __init__(self, scope: str, reason: str, fix: str) -> None:
        super().__init__(f"scope {scope!r} is invalid: {reason}; {fix}")
        self.scope = scope
        self.reason = reason
        self.fix = fix


class InvalidKey(UsageError):
    """A store key that is not a non-empty ``str``."""

    def __init__(self, scope: str, key: object) -> None:
        super().__init__(
            f"key {key!r} for scope {scope!r} is invalid: expected a non-empty str, "
            f"got {type(key).__name__}; build keys as strings, e.g. f'user:{{id}}'"
        )
        self.scope = scope
        self.key = key


class InvalidValue(UsageError):
    """A value that does not match its scope's type; nothing was written."""

    def __init__(self, scope: str, key: str, expected_type: str, reason: str) -> None:
        super().__init__(
            f"value for scope {scope!r} key {key!r} is not a valid {expected_type}: {reason}; "
            f"nothing was written; pass a {expected_type} as the scope declares"
        )
        self.scope = scope
        self.key = key
        self.expected_type = expected_type
        self.reason = reason


class ContractViolation(UsageError):
    """An access or a declaration that the scopes' contracts do not allow.

    Raised before any I/O, so nothing was read or written. ``access`` is one
    of ``"read"``, ``"write"``, ``"delete"``, ``"watch"``, ``"declare read"``
    or ``"declare write"``; ``key`` is ``None`` for a declaration or a watch
    on a prefix.
    """

    def __init__(
        self, actor: str, scope: str, key: str | None, access: str, reason: str, fix: str
    ) -> None:
        where = f" key {key!r}" if key is not None else ""
        super().__init__(
            f"actor {actor!r} may not {access} scope {scope!r}{where}: {reason}; {fix}"
        )
        self.actor = actor
        self.scope = scope
        self.key = key
        self.access = access
        self.reason = reason
        self.fix = fix


class VersionConflict(RuntimeFailure):
    """A compare-and-set write found another version than expected; nothing was written.

    ``expected`` is the version the caller passed (0: the key must not
    exist), ``current`` the version found (0: the key was never written).
    Re-read the record and decide again.
    """

    def __init__(self, scope: str, key: str, expected: int, current: int) -> None:
        super().__init__(
            f"write to scope {scope!r} key {key!r} expected version {expected}, "
            f"found version {current}; nothing was written; re-read the key and retry "
            "with the version you read"
        )
        self.scope = scope
        self.key = key
        self.expected = expected
        self.current = current


class StoredValueInvalid(RuntimeFailure):
    """A stored value does not decode into its scope's type (say the type changed).

    Never answered with a default: migrate the stored data, or give new
    fields of the type defaults so old values still decode.
    """

    def __init__(self, scope: str, key: str, version: int, expected_type: str, reason: str) -> None:
        super().__init__(
            f"stored value of scope {scope!r} key {key!r} version {version} does not decode "
            f"as {expected_type}: {reason}; give new fields defaults (schema evolution) "
            "or migrate the stored values"
        )
        self.scope = scope
        self.key = key
        self.version = version
        self.expected_type = expected_type
        self.reason = reason


class StoreClosed(RuntimeFailure):
    """The store is closed (or not open yet) and accepts no operation."""

    def __init__(self, store: str, operation: str) -> None:
        super().__init__(
            f"{store} is closed, so {operation} cannot run; "
            f"use it inside `async with {store}(...) as store:`"
        )
        self.store = store
        self.operation = operation


class StoreUnavailable(RuntimeFailure):
    """The backend failed; the original error is chained as ``__cause__``.

    For a write, the transaction was rolled back: nothing of it was written.
    """

    def __init__(self, store: str, operation: str, reason: str) -> None:
        super().__init__(f"{store} failed during {operation}: {reason}")
        self.store = store
        self.operation = operation
        self.reason = reason
