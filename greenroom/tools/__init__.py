"""Tools: typed, single-purpose, declared effects, granted per actor, HTTP with guard rails.

A :class:`Tool` has a typed ``Input`` and ``Output`` (msgspec Structs), an
async ``call`` and a declared :data:`Effect`. Its JSON Schema for function
calling is derived from ``Input``; arguments from a model are validated into
``Input`` or refused with a :class:`ToolInputError` the model can read. A
:class:`ToolRegistry` names the tools; :class:`ToolAccess` (a runtime
extension) grants them to actors, and a handler calls them through its
:class:`ToolBox`: ``await self.ctx.service(ToolBox).call(name, arguments)``.
"""

from greenroom.tools._access import ToolAccess
from greenroom.tools._arguments import ArgumentDecoder, Arguments
from greenroom.tools._call import Interceptor, Invocation, Proceed, ToolCall
from greenroom.tools._effect import (
    IRREVERSIBLE,
    PURE,
    Compensable,
    Effect,
    Idempotent,
    Irreversible,
    Pure,
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
from greenroom.tools._registry import ToolRegistry
from greenroom.tools._schema import FunctionDefinition, JsonSchema, ToolDefinition, input_schema
from greenroom.tools._tool import Tool, tool
from greenroom.tools._toolbox import ToolBox

__all__ = [
    "IRREVERSIBLE",
    "PURE",
    "ArgumentDecoder",
    "ArgumentNotAllowed",
    "Arguments",
    "BadResponse",
    "BudgetExhausted",
    "Compensable",
    "Delegation",
    "Effect",
    "Fetch",
    "FetchInput",
    "FetchOutput",
    "FunctionDefinition",
    "GrantExpired",
    "GrantRevoked",
    "GrantWidened",
    "Grant",
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
    "Proceed",
    "Pure",
    "ResponseTooLarge",
    "Scalar",
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
    "TooManyRedirects",
    "UnknownTool",
    "input_schema",
    "redact_url",
    "tool",
]
