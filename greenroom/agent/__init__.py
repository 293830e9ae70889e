"""The composed agent: Coordinator, ContextBuilder, Worker and ToolRunner, from the layers below.

::

    caller ──ask──▶ Router (the Coordinator's address: by message type, then by conversation)
                       │ forward: the worker answers the caller
                       ▼
                    Worker ── ContextBuilder ──reads (contract)──▶ Store   (read set)
                       │  ── DecisionGuard(Budget) ── Decider ──▶ Decision
                       │  ── check_fresh(read set): stale? rebuild and decide again
                       │  ── CallTool ──▶ ToolRunner ──▶ ToolBox ──▶ the tool
                       │  ── Delegate ──▶ Delegator ──ask──▶ another agent
                       └── Reply ──▶ Answer ──▶ caller

Each part is an ordinary actor or plain class; replace any with your own.
"""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.agent._context import BuiltContext, ContextBuilder, Fact
from greenroom.agent._conversation import Conversation, conversation_scope
from greenroom.agent._coordinator import Coordinator, conversation_pool
from greenroom.agent._delegation import DELEGATE_TOOL, Delegator, UnknownDelegate
from greenroom.agent._entity import Entity
from greenroom.agent._keeper import ConversationKeeper
from greenroom.agent._keyed import KeyedPool, conversation_workers
from greenroom.agent._messages import (
    Answer,
    AnswerStatus,
    Passivate,
    Passivated,
    Request,
    Resolve,
)
from greenroom.agent._router import Router
from greenroom.agent._runner import ToolRunner
from greenroom.agent._worker import Worker

__all__ = [
    "DELEGATE_TOOL",
    "Answer",
    "AnswerStatus",
    "BuiltContext",
    "ContextBuilder",
    "Conversation",
    "ConversationKeeper",
    "Coordinator",
    "Delegator",
    "Entity",
    "Fact",
    "KeyedPool",
    "Passivate",
    "Passivated",
    "Request",
    "Resolve",
    "Router",
    "ToolRunner",
    "UnknownDelegate",
    "Worker",
    "conversation_pool",
    "conversation_scope",
    "conversation_workers",
]

_publish_errors(__name__, globals())
