"""The errors of the decision layer, placed in greenroom's one error tree::

    GreenroomError
    ├── UsageError
    │   ├── InvalidDeciderConfig   a budget, model config, tool or router that cannot work
    │   └── NoRuleMatched          a rules decider without a default found no rule for a context
    └── RuntimeFailure
        ├── ModelError             a model did not give a usable decision (the router falls back)
        │   ├── ModelUnavailable   connection failed, an HTTP error status, a truncated stream
        │   ├── ModelTimeout       no complete answer within the timeout (also a TimeoutError)
        │   ├── RateLimited        HTTP 429; ``retry_after`` holds the server's wait, if sent
        │   ├── InvalidModelOutput output that does not validate; ``raw`` holds the raw text
        │   ├── DeciderFailed      a decider of a router raised something not a ModelError
        │   └── AllModelsFailed    every model of a router failed; ``attempts`` says how
        ├── BudgetExceeded         past one limit of its budget; ``limit`` names it (NotRetryable)
        └── DecisionFault          a decider misbehaves; counted like a crash by supervision
            ├── DecisionLoop       the same tool call with the same arguments, again, in a window
            └── NoProgress         steps went by without a new tool result or a reply

httpx errors are translated at the client's boundary into the most specific
of these, chained with ``from``. No error text ever holds an API key: text
that came from a server is redacted before it is put into a message.
"""

from __future__ import annotations

import math

from greenroom._errors import ErrorInfo, NotRetryable, RuntimeFailure, UsageError

__all__ = [
    "AllModelsFailed",
    "BudgetExceeded",
    "DeciderFailed",
    "DecisionFault",
    "DecisionLoop",
    "InvalidDeciderConfig",
    "InvalidModelOutput",
    "ModelError",
    "ModelTimeout",
    "ModelUnavailable",
    "NoProgress",
    "NoRuleMatched",
    "RateLimited",
]

_RAW_IN_MESSAGE = 300  # characters of raw output quoted in a message; the rest is on .raw
RAW_KEPT = 64 * 1024
"""Characters of raw output an :class:`InvalidModelOutput` keeps on ``.raw``."""
_TEXT = 300  # characters of another exception's text quoted in a message


class InvalidDeciderConfig(UsageError):
    """A budget, model config, tool definition or router that cannot work, found when built."""

    def __init__(self, owner: str, reason: str, fix: str) -> None:
        super().__init__(f"{owner} is invalid: {reason}; {fix}")
        self.owner = owner
        self.reason = reason
        self.fix = fix


class NoRuleMatched(UsageError):
    """No rule of a :class:`~greenroom.decide.RulesDecider` matched, and it has no default."""

    def __init__(self, decider: str, rules: int, last_message: str) -> None:
        super().__init__(
            f"none of the {rules} rule(s) of {decider!r} matched the context "
            f"(last message: {last_message}); add a rule for it or pass default="
        )
        self.decider = decider
        self.rules = rules
        self.last_message = last_message


class ModelError(RuntimeFailure):
    """A model did not produce a usable decision. ``model`` names it.

    A :class:`~greenroom.decide.FallbackRouter` moves to its next model on
    any of these.
    """

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class ModelUnavailable(ModelError):
    """The model's server could not be reached, answered with an error status, or cut its reply.

    ``status`` is the HTTP status when one was received (``None`` for a
    connection failure or a truncated stream); ``reason`` says what
    happened, with anything the server sent redacted and shortened.
    """

    def __init__(self, model: str, reason: str, status: int | None = None) -> None:
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(model, f"model {model!r} failed{code}: {reason}")
        self.reason = reason
        self.status = status


class ModelTimeout(ModelError, TimeoutError):
    """The model gave no complete answer within ``timeout`` seconds; the request was abandoned."""

    def __init__(self, model: str, timeout: float) -> None:
        super().__init__(
            model,
            f"model {model!r} did not answer within {timeout:g} s; "
            "raise ModelConfig.timeout or use a faster model as a fallback",
        )
        self.timeout = timeout


class RateLimited(ModelError):
    """The server answered HTTP 429. ``retry_after`` is its requested wait in seconds, if given.

    ``retry_after`` is ``None`` when the server sent no valid wait: a value
    that is not a finite number of seconds >= 0 (NaN, an infinity, a
    negative number) counts as absent. The client caps a valid header at
    one hour (``MAX_RETRY_AFTER``); a router caps it further at its
    ``max_retry_wait``.
    """

    def __init__(self, model: str, retry_after: float | None) -> None:
        if not (
            isinstance(retry_after, int | float)
            and not isinstance(retry_after, bool)
            and math.isfinite(retry_after)
            and retry_after >= 0
        ):
            retry_after = None
        wait = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
        super().__init__(model, f"model {model!r} is rate limited{wait}")
        self.retry_after: float | None = retry_after


class InvalidModelOutput(ModelError):
    """The model's output does not validate: never guessed at, always this error.

    ``raw`` is the raw text that failed (the response body, the reply text or
    a tool call's argument string), kept up to :data:`RAW_KEPT` characters
    (``raw_length`` is the length of the whole); ``reason`` says what was
    expected and what was found, and ``path`` where
    (``$.choices[0].message.tool_calls[1]``).
    """

    def __init__(
        self, model: str, reason: str, raw: str, path: str = "$", *, raw_length: int | None = None
    ) -> None:
        shown = raw if len(raw) <= _RAW_IN_MESSAGE else raw[:_RAW_IN_MESSAGE] + "..."
        super().__init__(
            model, f"model {model!r} gave invalid output at {path}: {reason}; raw output: {shown!r}"
        )
        self.reason = reason
        self.raw = raw[:RAW_KEPT]
        self.raw_length = len(raw) if raw_length is None else raw_length
        self.path = path


class DeciderFailed(ModelError):
    """A decider of a router raised an exception that is not a :class:`ModelError`.

    The router counts it as that model's failure and moves on. It is a bug
    in the decider (or an error it failed to translate); the original is
    chained as ``__cause__``, ``error_type`` names its class and
    ``error_message`` holds its text, shortened.
    """

    def __init__(self, model: str, error_type: str, error_message: str) -> None:
        text = error_message if len(error_message) <= _TEXT else error_message[:_TEXT] + "..."
        super().__init__(
            model,
            f"decider {model!r} raised {error_type}: {text}; the router moved to its next "
            "decider; fix the decider, or make it raise a ModelError for a model failure",
        )
        self.error_type = error_type
        self.error_message = text

    @classmethod
    def wrapping(cls, model: str, error: Exception) -> DeciderFailed:
        """The failure of ``model`` that raised ``error`` (chain it with ``from error``)."""
        try:
            text = str(error)
        except Exception:  # a hostile __str__ must not hide the failure it describes
            text = "(its text could not be read)"
        return cls(model, type(error).__qualname__, text)


class AllModelsFailed(ModelError):
    """Every model of a router failed or was cooling down after a rate limit.

    ``attempts`` lists each model's failure in the order tried; the last
    failure is chained as ``__cause__``.
    """

    def __init__(self, router: str, attempts: tuple[tuple[str, ErrorInfo], ...]) -> None:
        tried = "; ".join(f"{model}: {info.type}: {info.message}" for model, info in attempts)
        super().__init__(router, f"every model of {router!r} failed: {tried or 'none was tried'}")
        self.attempts = attempts


class BudgetExceeded(RuntimeFailure, NotRetryable):
    """A request went past one limit of its :class:`~greenroom.decide.Budget`.

    ``limit`` is ``"max_steps"``, ``"max_tool_calls"``, ``"max_tokens"`` or
    ``"deadline"``; ``used`` is what the request used (or would have used)
    and ``maximum`` the limit, in the limit's unit (steps, calls, tokens,
    seconds).
    """

    def __init__(self, limit: str, used: float, maximum: float) -> None:
        super().__init__(
            f"the request went past its budget's {limit}: {used:g} used, {maximum:g} allowed; "
            "the request was stopped; raise the limit or find why the decider does not finish"
        )
        self.limit = limit
        self.used = used
        self.maximum = maximum


class DecisionFault(RuntimeFailure):
    """A decider misbehaves (loops, makes no progress). Supervision counts it like a crash."""


class DecisionLoop(DecisionFault):
    """The same tool was decided with the same arguments again within the detector's window.

    ``tool`` and ``arguments`` (canonical JSON) name the call, ``count`` how
    often it was decided within the last ``window`` steps.
    """

    def __init__(self, tool: str, arguments: str, count: int, window: int) -> None:
        super().__init__(
            f"decided {tool}({arguments}) {count} times within {window} steps: a loop; "
            "restart with a fresh context, switch models, or escalate"
        )
        self.tool = tool
        self.arguments = arguments
        self.count = count
        self.window = window


class NoProgress(DecisionFault):
    """``steps`` decision steps went by without a new tool result or a reply."""

    def __init__(self, steps: int, limit: int) -> None:
        super().__init__(
            f"{steps} decision steps without a new tool result or a reply (limit {limit}); "
            "restart with a fresh context, switch models, or escalate"
        )
        self.steps = steps
        self.limit = limit
