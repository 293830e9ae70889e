"""The store as an extension of a runtime: declarations checked at spawn, a view per actor.

An actor declares the scopes it uses as class attributes::

    class Preferences(gr.Actor):
        writes = (PREFS,)          # it owns PREFS
        reads = (PROFILE,)

    async with gr.Runtime(extensions=[StoreAccess(store)]) as rt: ...

When such an actor is spawned, :class:`StoreAccess` checks its declaration
against the scopes, for the :class:`~greenroom.actors.Principal` the runtime
bound to it (:class:`ContractViolation` refuses the spawn), and in a
handler ``self.ctx.service(StoreView)`` is its contract-checked view: every
access is checked before any I/O, writes are recorded with the actor's name
and the trace id of the message being handled, and ``watch`` delivers
``StateChanged`` / ``WatchGap`` messages into the actor's own mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from greenroom.store._contract import Principal, check_declaration, violation
from greenroom.store._errors import InvalidScope
from greenroom.store._protocol import Store
from greenroom.store._scope import Scope
from greenroom.store._view import StoreView
from greenroom.store._watch import StateChanged, Watch, WatchGap
from greenroom.trace import current_span, format_id

if TYPE_CHECKING:
    from greenroom.actors import ActorContext, ActorRef

__all__ = ["ActorStoreView", "StoreAccess", "declared_scopes"]


def declared_scopes(actor_type: type) -> tuple[tuple[Scope[Any], ...], tuple[Scope[Any], ...]]:
    """The ``reads`` and ``writes`` an actor class declares (empty when it declares none).

    Raises:
        InvalidScope: a declaration is not a tuple of :class:`Scope`.
    """
    found: list[tuple[Scope[Any], ...]] = []
    for attr in ("reads", "writes"):
        value = getattr(actor_type, attr, ())
        if isinstance(value, Scope):
            value = (value,)
        if not isinstance(value, Iterable) or not all(isinstance(s, Scope) for s in value):
            raise InvalidScope(
                f"{actor_type.__qualname__}.{attr}",
                f"expected a tuple of Scope, got {value!r}",
                f"declare `{attr} = (SCOPE, ...)` on the actor class",
            )
        found.append(tuple(value))
    return found[0], found[1]


def _current_trace() -> str | None:
    span = current_span.get()
    return None if span is None else format_id(span.trace_id)


class ActorStoreView(StoreView):
    """A :class:`StoreView` bound to one actor: its watches feed its mailbox.

    Watches it opened are closed when the actor instance stops or restarts.
    """

    __slots__ = ("_ref", "_watches")

    def __init__(
        self,
        store: Store,
        principal: Principal,
        reads: Iterable[Scope[Any]],
        writes: Iterable[Scope[Any]],
        ref: ActorRef,
    ) -> None:
        super().__init__(store, principal, reads, writes, trace_id=_current_trace)
        self._ref = ref
        self._watches: list[Watch] = []

    async def watch(  # type: ignore[override]
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        since: int | None = None,
    ) -> Watch:
        """Watch a key or prefix; each change arrives in this actor's mailbox.

        The actor needs handlers for :class:`StateChanged` and
        :class:`WatchGap`. When its mailbox is full, the change is not
        delivered and a ``WatchGap`` follows as soon as there is room.

        Raises:
            ContractViolation: the scope is not readable by this actor.
        """
        ref = self._ref

        def deliver(message: StateChanged | WatchGap) -> None:
            ref.tell_nowait(message)

        watch = await super().watch(scope, key=key, prefix=prefix, sink=deliver, since=since)
        self._watches.append(watch)
        return watch

    async def aclose(self) -> None:
        """Close every watch this view opened."""
        watches, self._watches = self._watches, []
        for watch in watches:
            await watch.aclose()


class StoreAccess:
    """A runtime extension that gives actors contract-checked access to ``store``.

    Pass it as ``Runtime(extensions=[StoreAccess(store)])``. The store is not
    closed by the runtime: the code that opened it closes it. It keeps the
    store to itself (no attribute returns it): actors reach it only through
    their views.

    One name is one scope: the first scope declared under a name (or one
    passed in ``scopes``) is the scope of that name for this access, and an
    actor declaring a different scope of the same name (say, one naming
    itself as the owner) is refused at spawn. Pass the system's scopes in
    ``scopes`` so that no actor can be first with an impostor.

    Raises:
        InvalidScope: ``scopes`` holds something that is not a Scope, or two
            different scopes of one name.
    """

    __slots__ = ("__store", "_scopes")

    service_type = ActorStoreView

    def __init__(self, store: Store, *, scopes: Iterable[Scope[Any]] = ()) -> None:
        self.__store = store
        self._scopes: dict[str, Scope[Any]] = {}
        for scope in scopes:
            if not isinstance(scope, Scope):
                raise InvalidScope(
                    repr(scope), f"expected a Scope, got {type(scope).__name__}", "pass Scopes"
                )
            known = self._scopes.setdefault(scope.name, scope)
            if known != scope:
                raise InvalidScope(
                    scope.name,
                    f"two different scopes have this name: {known!r} and {scope!r}",
                    "declare one Scope object per name and import it where it is used",
                )

    def check(self, principal: Principal) -> None:
        """Refuse the spawn of an actor whose declaration its scopes do not allow.

        Raises:
            ContractViolation: a declared write to a scope it does not own, a
                declared read of a scope that does not list it, or a scope
                that differs from the one this access knows by that name.
            InvalidScope: ``reads`` or ``writes`` is not a tuple of scopes.
        """
        if principal.actor_type is None:
            return
        reads, writes = declared_scopes(principal.actor_type)
        if reads or writes:
            check_declaration(principal, reads, writes)
            self._pin(principal, reads, writes)

    def _pin(
        self, principal: Principal, reads: tuple[Scope[Any], ...], writes: tuple[Scope[Any], ...]
    ) -> None:
        for access, scopes in (("declare write", writes), ("declare read", reads)):
            for scope in scopes:
                known = self._scopes.setdefault(scope.name, scope)
                if known is scope or known == scope:
                    continue
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"it declares {scope!r}, but this store's scope of that name is {known!r}",
                    "declare the one Scope object of that name (import it where it is used)",
                )

    def create(self, ctx: ActorContext) -> ActorStoreView:
        """The view of one actor instance, for the principal the runtime bound to it.

        Raises:
            ContractViolation, InvalidScope: as :meth:`check` (the class's
                declaration changed since the spawn).
        """
        principal = ctx.principal
        reads, writes = declared_scopes(ctx.actor_type)
        self._pin(principal, reads, writes)
        return ActorStoreView(self.__store, principal, reads, writes, ctx.ref)

    async def release(self, service: object) -> None:
        """Close the watches of a stopped or restarted instance."""
        if isinstance(service, ActorStoreView):
            await service.aclose()
