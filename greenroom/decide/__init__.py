"""The decision layer: decisions, deciders (rules, OpenAI-compatible models, fallbacks), budgets.

A :class:`Decider` maps a prepared :class:`Context` to a
:class:`DecisionResult`: one :data:`Decision` (``CallTool``, ``Reply``,
``Delegate``, ``Finish``) or several parallel ``CallTool``. Deciders:
:class:`RulesDecider` (deterministic, offline), :class:`OpenAIClient` (any
OpenAI-compatible chat-completions server) and :class:`FallbackRouter`
(primary, then fallbacks). A :class:`DecisionGuard` runs each step under a
:class:`Budget` and detects loops and stalls.
"""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.decide._budget import Budget, BudgetTracker, BudgetUsage
from greenroom.decide._config import ModelConfig
from greenroom.decide._context import ChatMessage, Context, Role, tool_name
from greenroom.decide._decider import Decider
from greenroom.decide._decision import (
    CallTool,
    Decision,
    DecisionResult,
    Delegate,
    Failure,
    Finish,
    Reply,
    Usage,
)
from greenroom.decide._detectors import LoopDetector, NoProgressDetector
from greenroom.decide._errors import (
    AllModelsFailed,
    BudgetExceeded,
    DeciderFailed,
    DecisionFault,
    DecisionLoop,
    InvalidDeciderConfig,
    InvalidModelOutput,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    NoProgress,
    NoRuleMatched,
    RateLimited,
)
from greenroom.decide._guard import DecisionGuard
from greenroom.decide._openai import OpenAIClient
from greenroom.decide._policy import FaultAction, FaultPolicy
from greenroom.decide._router import FallbackRouter
from greenroom.decide._rules import (
    Predicate,
    Rule,
    RulesDecider,
    Then,
    always,
    last_tool_result,
    tool_returned,
    user_says,
)

__all__ = [
    "FaultAction",
    "FaultPolicy",
    "AllModelsFailed",
    "Budget",
    "BudgetExceeded",
    "BudgetTracker",
    "BudgetUsage",
    "CallTool",
    "ChatMessage",
    "Context",
    "Decider",
    "DeciderFailed",
    "Decision",
    "DecisionFault",
    "DecisionGuard",
    "DecisionLoop",
    "DecisionResult",
    "Delegate",
    "FallbackRouter",
    "Failure",
    "Finish",
    "InvalidDeciderConfig",
    "InvalidModelOutput",
    "LoopDetector",
    "ModelConfig",
    "ModelError",
    "ModelTimeout",
    "ModelUnavailable",
    "NoProgress",
    "NoProgressDetector",
    "NoRuleMatched",
    "OpenAIClient",
    "Predicate",
    "RateLimited",
    "Reply",
    "Role",
    "Rule",
    "RulesDecider",
    "Then",
    "Usage",
    "always",
    "last_tool_result",
    "tool_name",
    "tool_returned",
    "user_says",
]

_publish_errors(__name__, globals())
