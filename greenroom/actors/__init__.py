"""Actors, refs, supervisors, pools and the runtime.

One message, from send to reply (``reply = await ref.ask(GetOrder(...))``)::

    ActorRef.ask                                   _ref.py
      System.envelope   check the body once per type,   _system.py
                        make the Envelope (trace, deadline)
      loop.create_future(); envelope.reply = future     the reply target
      System.deadlines.add(future, timeout)   the one timeout   _deadlines.py
      MemoryMailbox.offer   room: append, wake the cell  mailbox/_memory.py
        (full: System.put waits for room, bounded by the same future)
      Cell.wake         resolve the lingering waiter,    _cell.py
                        or start the cell's task
    Cell._run           the cell's task drains its mailbox without awaiting
      mailbox.get_nowait()                               between messages
      dispatch[type(body)]   the handler, found once per class (_actor.py)
      await handler(actor, body)
      envelope.reply.set_result(result)   the asker resumes; a reply to an
                        ask that timed out is dropped and counted
                        (System.late_replies); an ask from another process
                        has no future: System.reply sends it to reply_to
    on failure: Cell.fail retries the message (requeue at the head) or
      dead-letters it and fails the ask with HandlerError, then reports to
      the supervisor (Supervisor._child_failed, _supervisor.py), which
      restarts, stops or escalates per OTP.

Layers, lowest first (runtime imports point down; ``tests/test_layering.py``
checks there is no circle): ``_actor``, ``_spec``, ``_principal``,
``_extension``, ``_config``, ``_deadlines``, ``_system`` (all other modules
use of the runtime), ``_ref``, ``_forward``, ``_watch``, ``_context``,
``_cell``, ``_supervisor``, ``_supervisor_ref``, ``_pool``, ``_runtime``
(wires the steps that need the classes above ``_system`` into it), ``_run``.
"""

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
