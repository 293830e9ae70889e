"""Shared state under explicit read/write contracts: scopes, versioned records, watches, read sets.

A :class:`Scope` names a msgspec type, one owner (who may write) and its
readers. Actors reach the store through a :class:`StoreView` that checks
every access against their declaration. Records are :class:`Versioned`;
writes can compare-and-set on the version; a :class:`ReadSet` remembers the
versions a decision was built on, and ``check_fresh`` says which are stale.
"""

from greenroom.store._access import ActorStoreView, StoreAccess, declared_scopes
from greenroom.store._contract import Principal, check_declaration
from greenroom.store._errors import (
    ContractViolation,
    InvalidKey,
    InvalidScope,
    InvalidValue,
    StoreClosed,
    StoredValueInvalid,
    StoreUnavailable,
    VersionConflict,
)
from greenroom.store._memory import MemoryStore
from greenroom.store._protocol import Store
from greenroom.store._readset import ReadEntry, ReadSet
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._redis import RedisStore
from greenroom.store._scope import Scope
from greenroom.store._sqlite import SqliteStore, SqliteStoreStatistics
from greenroom.store._view import StoreView
from greenroom.store._watch import GapReason, Sink, StateChanged, Watch, WatchGap

__all__ = [
    "ActorStoreView",
    "ContractViolation",
    "GapReason",
    "InvalidKey",
    "InvalidScope",
    "InvalidValue",
    "MemoryStore",
    "Principal",
    "ReadEntry",
    "ReadSet",
    "RedisStore",
    "Scope",
    "Sink",
    "SqliteStore",
    "SqliteStoreStatistics",
    "StateChanged",
    "Store",
    "StoreAccess",
    "StoreClosed",
    "StoreUnavailable",
    "StoreView",
    "StoredValueInvalid",
    "Tombstone",
    "Versioned",
    "VersionConflict",
    "Watch",
    "WatchGap",
    "check_declaration",
    "declared_scopes",
]
