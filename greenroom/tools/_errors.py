"""The errors of the tools layer, placed in greenroom's one error tree::

    GreenroomError
    ├── UsageError
    │   ├── InvalidTool            a tool definition that cannot work (no effect, bad name, ...)
    │   └── InvalidGrant           a grant that cannot work, or that names a tool nobody registered
    │       └── GrantWidened       a delegation that would widen the grant it narrows
    └── RuntimeFailure
        ├── ToolError              a tool call that did not produce its Output
        │   ├── ToolInputError     the arguments do not validate into the tool's Input
        │   ├── ToolRefused        the call was refused before the tool ran
        │   │   ├── UnknownTool        no tool of that name is registered
        │   │   ├── ToolNotGranted     the actor holds no grant for the tool
        │   │   ├── GrantExpired       the grant's ``expires_at`` has passed
        │   │   ├── GrantRevoked       a delegated grant was revoked (its holder restarted)
        │   │   ├── BudgetExhausted    the grant's call budget is spent
        │   │   └── ArgumentNotAllowed an argument is outside what the grant allows
        │   ├── ToolFailed         the tool's ``call`` raised (the error is chained)
        │   ├── ToolOutputError    the tool returned something that is not its Output
        │   ├── ApprovalError      (also NotRetryable) the call waits for, or was refused, approval
        │   │   ├── ApprovalPending    the call is parked as a ticket; the tool did not run
        │   │   ├── ApprovalDenied     a person denied the ticket; the tool did not run
        │   │   ├── ApprovalExpired    the ticket's deadline passed; the tool did not run
        │   │   ├── TicketClosed       the ticket was settled by another message already
        │   │   └── UnknownTicket      no ticket of that id is parked for this actor
        │   └── LedgerError        (also NotRetryable) the side-effect ledger refuses to run a step
        │       ├── StepInterrupted    an intent without a receipt, of a tool that must not re-run
        │       └── StepInputChanged   a redelivered step asks for another call than it recorded
        └── HttpError              an HTTP request of an HTTP tool failed
            ├── InvalidUrl         not an absolute http(s) URL
            ├── HostNotAllowed     the host (of the request or of a redirect) is not allowed
            ├── HttpTimeout        a phase of the request ran past its timeout
            ├── ResponseTooLarge   the response body passed the size limit (reading stopped)
            ├── TooManyRedirects   the redirect chain passed its limit
            ├── HttpUnavailable    the connection failed (refused, reset, protocol error)
            └── BadResponse        the response cannot be used (bad JSON, bad redirect)

The approval and ledger errors live in ``_effect_errors`` (they need the
NotRetryable mixin and nothing else here).

Every message says what happened, what was expected and found, and the fix;
the same facts are attributes. Messages of :class:`ToolError` are written so a
language model can read them and correct its next call. No error carries a
URL's credentials, query string or any request header: HTTP errors name a
request by its redacted URL (scheme, host, port and path only).
"""

from __future__ import annotations

from greenroom._errors import RuntimeFailure, UsageError

__all__ = [
    "ArgumentNotAllowed",
    "BadResponse",
    "BudgetExhausted",
    "GrantExpired",
    "GrantRevoked",
    "GrantWidened",
    "HostNotAllowed",
    "HttpError",
    "HttpTimeout",
    "HttpUnavailable",
    "InvalidGrant",
    "InvalidTool",
    "InvalidUrl",
    "ResponseTooLarge",
    "ToolError",
    "ToolFailed",
    "ToolInputError",
    "ToolNotGranted",
    "ToolOutputError",
    "ToolRefused",
    "TooManyRedirects",
    "UnknownTool",
]


class InvalidTool(UsageError):
    """A tool definition that cannot work, found when the tool is defined or registered."""

    def __init__(self, tool: str, reason: str, fix: str) -> None:
        super().__init__(f"tool {tool!r} is invalid: {reason}; {fix}")
        self.tool = tool
        self.reason = reason
        self.fix = fix


class InvalidGrant(UsageError):
    """A grant that cannot work: a bad budget or narrowing, or a tool the registry lacks.

    Raised when the grant is built, when a :class:`ToolAccess` is built, or
    when an actor holding it is spawned.
    """

    def __init__(self, tool: str, reason: str, fix: str) -> None:
        super().__init__(f"grant of tool {tool!r} is invalid: {reason}; {fix}")
        self.tool = tool
        self.reason = reason
        self.fix = fix


class GrantWidened(InvalidGrant):
    """``Grant.narrowed`` or a delegation asked for more than the grant it narrows."""


class ToolError(RuntimeFailure):
    """A call of tool ``tool`` did not produce its Output."""

    tool: str


class ToolInputError(ToolError):
    """The arguments of a call do not validate into the tool's ``Input``; the tool did not run.

    ``reason`` is msgspec's account (what was expected, what was found),
    ``path`` the JSON path of the offending value (``"$"`` for the whole
    arguments, ``None`` when the text is not JSON at all).
    """

    def __init__(self, tool: str, reason: str, path: str | None) -> None:
        super().__init__(
            f"arguments for tool {tool!r} are invalid: {reason}; "
            "call it again with arguments that match its JSON schema"
        )
        self.tool = tool
        self.reason = reason
        self.path = path


class ToolRefused(ToolError):
    """The call was refused before the tool ran; ``actor`` made it."""

    def __init__(self, tool: str, actor: str, reason: str, fix: str) -> None:
        super().__init__(f"{actor} may not call tool {tool!r}: {reason}; {fix}")
        self.tool = tool
        self.actor = actor
        self.reason = reason
        self.fix = fix


class UnknownTool(ToolRefused):
    """No tool of this name is registered."""

    def __init__(self, tool: str, actor: str, known: tuple[str, ...]) -> None:
        super().__init__(
            tool,
            actor,
            "no tool of that name exists",
            f"call one of the tools offered: {', '.join(known) or 'none'}",
        )
        self.known = known


class ToolNotGranted(ToolRefused):
    """The actor holds no grant for this tool."""

    def __init__(self, tool: str, actor: str, granted: tuple[str, ...]) -> None:
        super().__init__(
            tool,
            actor,
            "it holds no grant for that tool",
            f"call one of the tools it was granted: {', '.join(granted) or 'none'}",
        )
        self.granted = granted


class GrantExpired(ToolRefused):
    """The grant's ``expires_at`` (seconds since the epoch) has passed."""

    def __init__(self, tool: str, actor: str, expires_at: float, now: float) -> None:
        super().__init__(
            tool,
            actor,
            f"its grant expired at {expires_at:.3f}, {now - expires_at:.3f} s ago",
            "ask for a new grant; do not retry this call",
        )
        self.expires_at = expires_at
        self.now = now


class GrantRevoked(ToolRefused):
    """A delegated grant was revoked (its holder or the grant it narrows is gone)."""

    def __init__(self, tool: str, actor: str, delegation: int, reason: str) -> None:
        super().__init__(
            tool,
            actor,
            f"delegation {delegation} was revoked: {reason}",
            "ask the delegating actor for a new delegation",
        )
        self.delegation = delegation


class BudgetExhausted(ToolRefused):
    """The grant's call budget is spent; ``budget`` is how many calls it allowed."""

    def __init__(self, tool: str, actor: str, budget: int) -> None:
        super().__init__(
            tool,
            actor,
            f"its grant allows {budget} call(s) and all were made",
            "finish without this tool, or ask for a grant with a larger budget",
        )
        self.budget = budget


class ArgumentNotAllowed(ToolRefused):
    """An argument is outside the values the grant allows for that field."""

    def __init__(
        self, tool: str, actor: str, field: str, found: object, allowed: tuple[object, ...]
    ) -> None:
        shown = ", ".join(repr(v) for v in allowed)
        super().__init__(
            tool,
            actor,
            f"argument {field!r} is {found!r}, but its grant allows only: {shown}",
            f"call it with {field!r} set to one of the allowed values",
        )
        self.field = field
        self.found = found
        self.allowed = allowed


class ToolFailed(ToolError):
    """The tool's ``call`` raised; the original error is chained as ``__cause__``."""

    def __init__(self, tool: str, error_type: str, error_message: str) -> None:
        super().__init__(f"tool {tool!r} failed: {error_type}: {error_message}")
        self.tool = tool
        self.error_type = error_type
        self.error_message = error_message


class ToolOutputError(ToolError):
    """The tool returned a value that is not its ``Output`` type: a bug in the tool."""

    def __init__(self, tool: str, expected: str, found: str) -> None:
        super().__init__(
            f"tool {tool!r} returned {found}, expected {expected}; "
            "fix the tool's call to return its Output"
        )
        self.tool = tool
        self.expected = expected
        self.found = found


class HttpError(RuntimeFailure):
    """An HTTP request failed; ``url`` is redacted (no credentials, no query string)."""

    def __init__(self, message: str, method: str, url: str) -> None:
        super().__init__(f"{method} {url}: {message}")
        self.method = method
        self.url = url


class InvalidUrl(HttpError):
    """The URL is not an absolute ``http`` or ``https`` URL; nothing was sent."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"not a usable URL: {reason}; pass an absolute http(s) URL", method, url)
        self.reason = reason


class HostNotAllowed(HttpError):
    """The request's host, or the host a redirect points to, is not on the allowlist.

    No request was sent to that host. ``redirected`` says whether the host came
    from a redirect.
    """

    def __init__(
        self, method: str, url: str, host: str, allowed: tuple[str, ...], *, redirected: bool
    ) -> None:
        via = "a redirect points to" if redirected else "the request is for"
        super().__init__(
            f"{via} host {host!r}, which is not allowed (allowed: "
            f"{', '.join(allowed) or 'none'}); nothing was sent to it; "
            "use an allowed host, or add it to HttpClient(allow_hosts=...)",
            method,
            url,
        )
        self.host = host
        self.allowed = allowed
        self.redirected = redirected


class HttpTimeout(HttpError, TimeoutError):
    """A phase of the request (``connect``, ``read``, ``write``, ``pool``, ``total``) timed out."""

    def __init__(self, method: str, url: str, phase: str, timeout: float | None) -> None:
        limit = "" if timeout is None else f" of {timeout:g} s"
        super().__init__(
            f"the {phase} timeout{limit} passed; the server is slow or unreachable, "
            "try again later or raise HttpTimeouts",
            method,
            url,
        )
        self.phase = phase
        self.timeout = timeout


class ResponseTooLarge(HttpError):
    """The response body passed ``limit`` bytes; reading stopped there and the body was dropped."""

    def __init__(self, method: str, url: str, limit: int, declared: int | None) -> None:
        size = f" (it declares {declared} bytes)" if declared is not None else ""
        super().__init__(
            f"the response body is over the limit of {limit} bytes{size}; "
            "ask for less (a page, a range), or raise max_response_bytes",
            method,
            url,
        )
        self.limit = limit
        self.declared = declared


class TooManyRedirects(HttpError):
    """The redirect chain passed ``limit`` hops."""

    def __init__(self, method: str, url: str, limit: int) -> None:
        super().__init__(
            f"more than {limit} redirects; the server loops, or raise max_redirects",
            method,
            url,
        )
        self.limit = limit


class HttpUnavailable(HttpError):
    """The connection failed (refused, reset, a protocol error); chained as ``__cause__``."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"the request failed: {reason}; try again later", method, url)
        self.reason = reason


class BadResponse(HttpError):
    """The response cannot be used: a body that is not valid JSON, a redirect without Location."""

    def __init__(self, method: str, url: str, status: int, reason: str) -> None:
        super().__init__(f"unusable response (status {status}): {reason}", method, url)
        self.status = status
        self.reason = reason
