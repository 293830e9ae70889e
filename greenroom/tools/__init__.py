"""Tools: typed, single-purpose, declared effects, granted per actor, HTTP with guard rails.

A :class:`Tool` has a typed ``Input`` and ``Output`` (msgspec Structs), an
async ``call`` and a declared :data:`Effect`. Its JSON Schema for function
calling is derived from ``Input``; arguments from a model are validated into
``Input`` or refused with a :class:`ToolInputError` the model can read. A
:class:`ToolRegistry` names the tools; :class:`ToolAccess` (a runtime
extension) grants them to actors, and a handler calls them through its
:class:`ToolBox`: ``await self.ctx.service(ToolBox).call(name, arguments)``.

Calls that need a person's approval are parked by an :class:`ApprovalGate`
(``Approve`` / ``Deny`` settle them through ``ToolBox.resolve``); a
:class:`Ledger` interceptor records an intent and a receipt of every
non-pure call, so a redelivered message never runs a side effect twice by
accident.

The trust model (in one process)
--------------------------------
What the runtime enforces: every call through a :class:`ToolBox` is checked
against the grant it runs under (granted, not expired, within its narrowing
and budget) before the tool runs. Grants are keyed by an actor class or an
actor name and go to the :class:`~greenroom.actors.Principal` the runtime
bound at spawn: a class key names exactly that class object (a string key
is looked up in the module that builds the :class:`ToolAccess`), so another
class with the same ``__qualname__`` gets nothing; a name key counts only
for an actor the application spawned under that name, never one an actor
spawned (``ctx.spawn``, ``ctx.runtime.spawn``, a ``SupervisorRef``, a task it
started). A delegated grant only narrows, and lives only as long as its
holder instance.

What Python cannot stop: code in the same process can import a tool and
call it directly, reach private attributes or walk ``gc``, use ``ctypes``,
or monkeypatch greenroom. An actor also has ``ctx.runtime``, the
application's runtime: through ``ctx.runtime.extensions`` it reaches the
:class:`ToolAccess`, its registry, and the store of a :class:`Ledger` or
:class:`ApprovalGate`. The checks keep honest code within its grants; they
do not contain hostile code.
Run untrusted code in another process that holds no tools or credentials,
and let it ask an actor that does, by message.
"""

from greenroom._errors import publish_errors as _publish_errors
from greenroom.tools._access import ToolAccess
from greenroom.tools._approval import ApprovalGate
from greenroom.tools._arguments import ArgumentDecoder, Arguments
from greenroom.tools._call import Interceptor, Invocation, Proceed, ToolCall, step_key
from greenroom.tools._effect import (
    IRREVERSIBLE,
    PURE,
    Compensable,
    Effect,
    Idempotent,
    Irreversible,
    Pure,
)
from greenroom.tools._effect_errors import (
    ApprovalDenied,
    ApprovalError,
    ApprovalExpired,
    ApprovalPending,
    LedgerError,
    StepInputChanged,
    StepInterrupted,
    TicketClosed,
    UnknownTicket,
)
from greenroom.tools._errors import (
    ArgumentNotAllowed,
    BadResponse,
    BudgetExhausted,
    GrantExpired,
    GrantRevoked,
    GrantWidened,
    HostNotAllowed,
    HttpError,
    HttpTimeout,
    HttpUnavailable,
    InvalidGrant,
    InvalidTool,
    InvalidUrl,
    ResponseTooLarge,
    ToolError,
    ToolFailed,
    ToolInputError,
    ToolNotGranted,
    ToolOutputError,
    ToolRefused,
    TooManyRedirects,
    UnknownTool,
)
from greenroom.tools._fetch import Fetch, FetchInput, FetchOutput
from greenroom.tools._grant import Delegation, Grant, Scalar
from greenroom.tools._http import HttpClient, HttpResponse, HttpTimeouts, redact_url
from greenroom.tools._ledger import LEDGER_SCOPE, Ledger, LedgerEntry, Receipt
from greenroom.tools._registry import ToolRegistry
from greenroom.tools._schema import FunctionDefinition, JsonSchema, ToolDefinition, input_schema
from greenroom.tools._ticket import (
    APPROVAL_SCOPE,
    Approve,
    Deny,
    Expire,
    Settled,
    Ticket,
    TicketMessage,
    TicketState,
)
from greenroom.tools._tool import Tool, tool
from greenroom.tools._toolbox import ToolBox

__all__ = [
    "APPROVAL_SCOPE",
    "IRREVERSIBLE",
    "LEDGER_SCOPE",
    "PURE",
    "ApprovalDenied",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalGate",
    "ApprovalPending",
    "Approve",
    "ArgumentDecoder",
    "ArgumentNotAllowed",
    "Arguments",
    "BadResponse",
    "BudgetExhausted",
    "Compensable",
    "Delegation",
    "Deny",
    "Effect",
    "Expire",
    "Fetch",
    "FetchInput",
    "FetchOutput",
    "FunctionDefinition",
    "Grant",
    "GrantExpired",
    "GrantRevoked",
    "GrantWidened",
    "HostNotAllowed",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpTimeout",
    "HttpTimeouts",
    "HttpUnavailable",
    "Idempotent",
    "Interceptor",
    "InvalidGrant",
    "InvalidTool",
    "InvalidUrl",
    "Invocation",
    "Irreversible",
    "JsonSchema",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "Proceed",
    "Pure",
    "Receipt",
    "ResponseTooLarge",
    "Scalar",
    "Settled",
    "StepInputChanged",
    "StepInterrupted",
    "Ticket",
    "TicketClosed",
    "TicketMessage",
    "TicketState",
    "TooManyRedirects",
    "Tool",
    "ToolAccess",
    "ToolBox",
    "ToolCall",
    "ToolDefinition",
    "ToolError",
    "ToolFailed",
    "ToolInputError",
    "ToolNotGranted",
    "ToolOutputError",
    "ToolRefused",
    "ToolRegistry",
    "UnknownTicket",
    "UnknownTool",
    "input_schema",
    "redact_url",
    "step_key",
    "tool",
]

_publish_errors(__name__, globals())
