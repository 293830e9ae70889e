"""Actors, refs, supervisors, pools and the runtime."""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.actors._actor import IGNORE, Actor, Ignore, handler
from greenroom.actors._config import RuntimeConfig, RuntimeStatistics
from greenroom.actors._context import ActorContext, Timer
from greenroom.actors._extension import Extension
from greenroom.actors._forward import Deferred
from greenroom.actors._pool import PoolRef
from greenroom.actors._principal import Principal
from greenroom.actors._ref import ActorRef
from greenroom.actors._run import run, serve
from greenroom.actors._runtime import Runtime
from greenroom.actors._spec import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    PoolSpec,
    Restart,
    RetryPolicy,
    Routing,
    Shutdown,
    Spec,
    Strategy,
    SupervisorSpec,
)
from greenroom.actors._supervisor import ChildCounts, ChildInfo, ChildStatus, StartedChild
from greenroom.actors._supervisor_ref import SupervisorRef
from greenroom.actors._watch import Terminated, TerminationReason

__all__ = [
    "IGNORE",
    "Actor",
    "ActorContext",
    "ActorRef",
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStatus",
    "Deferred",
    "Extension",
    "Ignore",
    "PoolRef",
    "PoolSpec",
    "Principal",
    "Restart",
    "RetryPolicy",
    "Routing",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStatistics",
    "Shutdown",
    "Spec",
    "StartedChild",
    "Strategy",
    "SupervisorRef",
    "SupervisorSpec",
    "Terminated",
    "TerminationReason",
    "Timer",
    "handler",
    "run",
    "serve",
]

_publish_errors(__name__, globals())
