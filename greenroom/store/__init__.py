"""Shared state under explicit read/write contracts: scopes, versioned records, watches, read sets.

A :class:`Scope` names a msgspec type, one owner (who may write) and its
readers. Actors reach the store through a :class:`StoreView` that checks
every access against their declaration. Records are :class:`Versioned`;
writes can compare-and-set on the version; a :class:`ReadSet` remembers the
versions a decision was built on, and ``check_fresh`` says which are stale.

The trust model (in one process)
--------------------------------
What the runtime enforces, through every API it offers an actor:

- Every access goes through the actor's view and is checked against its
  declaration and the scope's contract before any I/O; a refusal is a
  :class:`ContractViolation` and nothing is read or written.
- No attribute or method of a view (or of :class:`StoreAccess`) returns the
  store behind it, and a write's ``updated_by`` is always the view's
  principal: an actor cannot name another writer.
- Who an actor is (its :class:`Principal`) is bound by the runtime when it
  spawns the actor and kept across restarts. A scope's class entry matches
  exactly that class object (not another class with the same
  ``__qualname__``, not a subclass); a name entry matches only an actor the
  application spawned under that name, never one an actor spawned, by any
  route (``ctx.spawn``, ``ctx.runtime.spawn``, a ``SupervisorRef``, a task
  it started).
- One name is one scope per :class:`StoreAccess`: a different scope of a
  known name (an actor naming itself the owner of a copy) is refused at
  spawn. Pass ``StoreAccess(store, scopes=[...])`` so that no actor can be
  first to declare a name.

What Python cannot stop: code in the same process is not sandboxed. It can
import greenroom's private modules, read name-mangled attributes, walk the
garbage collector (``gc.get_referents``), use ``ctypes``, monkeypatch
greenroom or the store, or open the store's sqlite file or Redis keys
itself. ``ctx.runtime`` is the application's runtime: an actor can spawn
and stop actors with it (under the rules above) and reach the application's
other extensions. The contracts catch mistakes and keep honest code honest;
they do not contain hostile code. To isolate code you do not trust, run it
in another process that holds no handle on the store: give it a Redis
store whose user may only touch its own keys (Redis ACLs, e.g. ``~prefix:*``
and only the commands it needs), or let it reach state only through
messages to an actor that owns the scope.
"""

from greenroom._errors import publish_errors as _publish_errors
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

_publish_errors(__name__, globals())
