"""The composed agent: Coordinator, ContextBuilder, Worker and ToolRunner, from the layers below.

::

    caller ──ask──▶ CoordinatorRef (routes by message type, then by conversation key)
                       ▼
                    Worker ── ContextBuilder ──reads (contract)──▶ Store   (read set)
                       │  ── DecisionGuard(Budget) ── Decider ──▶ Decision
                       │  ── check_fresh(read set): stale? rebuild and decide again
                       │  ── CallTool ──▶ ToolRunner ──▶ ToolBox ──▶ the tool
                       └── Reply ──▶ Answer ──▶ caller

Each part is an ordinary actor or plain class; replace any with your own.
"""

from greenroom.agent._context import BuiltContext, ContextBuilder, Fact
from greenroom.agent._conversation import Conversation, conversation_scope
from greenroom.agent._coordinator import Coordinator, CoordinatorRef, conversation_pool
from greenroom.agent._keeper import ConversationKeeper
from greenroom.agent._messages import Answer, AnswerStatus, Request, Resolve
from greenroom.agent._runner import ToolRunner
from greenroom.agent._worker import Worker

__all__ = [
    "Answer",
    "AnswerStatus",
    "BuiltContext",
    "ContextBuilder",
    "Conversation",
    "ConversationKeeper",
    "Coordinator",
    "CoordinatorRef",
    "Fact",
    "Request",
    "Resolve",
    "ToolRunner",
    "Worker",
    "conversation_pool",
    "conversation_scope",
]
