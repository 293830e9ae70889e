"""A decider backed by an OpenAI-compatible chat-completions endpoint, over httpx.

One client speaks the protocol, not a vendor's dialect, so it works
unchanged against OpenAI, Ollama, vLLM and llama.cpp server (see
``_wire`` for what it relies on). Streaming (SSE) and non-streaming replies
give the same :class:`DecisionResult`.

The API key is held privately, sent only in the ``Authorization`` header,
and never logged or put into an exception's text: httpx errors are
translated here, chained with ``from``, and anything a server sends back is
redacted before it can reach a message.

Whatever a server sends (any status, headers, bytes, or a stream cut
anywhere), :meth:`OpenAIClient.decide` returns a result or raises a
:class:`ModelError`: bodies are read as UTF-8 (invalid bytes replaced) up to
``ModelConfig.max_response_bytes``, and anything that fails to decode is
:class:`InvalidModelOutput` with the text received.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Generator, Mapping
from types import TracebackType

import anyio
import httpx
import msgspec

from greenroom._errors import GreenroomError
from greenroom.decide._config import ModelConfig
from greenroom.decide._context import Context
from greenroom.decide._decision import DecisionResult
from greenroom.decide._errors import (
    RAW_KEPT,
    InvalidModelOutput,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    RateLimited,
)
from greenroom.decide._retry_after import retry_after
from greenroom.decide._tracing import decision_span, record_result
from greenroom.decide._validate import to_result
from greenroom.decide._wire import (
    Draft,
    SseDecoder,
    StreamAssembler,
    build_request,
    encode,
    parse_body,
    schema_of,
)
from greenroom.trace import register_secret
from greenroom.trace._logging import logger

__all__ = ["OpenAIClient"]

_REDACTED = "[redacted]"
_ERROR_TEXT = 300  # characters of a server's error body quoted in an error
_ERROR_READ = 64 * 1024  # bytes of an error body read; the rest is not needed to quote it


class _Secret:
    """A string that never shows itself in a repr, a traceback's locals or a log."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_Secret('***')"

    __str__ = __repr__


class _BearerAuth(httpx.Auth):
    """Adds the key to each request, so no frame of ours holds it in a local variable."""

    def __init__(self, key: _Secret) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._key.reveal()
        yield request


class OpenAIClient:
    """Decides by asking one model behind an OpenAI-compatible endpoint.

    Args:
        config: the model, the endpoint and its limits.
        api_key: the API key; when ``None``, the environment variable named
            by ``config.api_key_env`` is read once, here. With neither, no
            ``Authorization`` header is sent.
        argument_types: for each tool name, the msgspec Struct type its
            arguments must fit; tools not named are checked only to take a
            JSON object.
        reply_type: when set, every final reply must be JSON of this type;
            the :class:`Reply` holds the decoded value.
        http_client: an ``httpx.AsyncClient`` to share; the client makes
            (and closes) its own when ``None``.

    Use it as ``async with OpenAIClient(...) as client:``, or call
    :meth:`aclose` when done.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        api_key: str | None = None,
        argument_types: Mapping[str, type] | None = None,
        reply_type: type | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(config.api_key_env)
        self._key = _Secret(register_secret(key)) if key else None  # cut out of all output
        self._config = config
        self._argument_types = dict(argument_types or {})
        self._reply_type = reply_type
        self._reply_schema = schema_of(reply_type) if reply_type is not None else None
        self._http = http_client
        self._owns_http = http_client is None

    @property
    def name(self) -> str:
        """The model name: recorded as the ``model`` of each result."""
        return self._config.model

    @property
    def config(self) -> ModelConfig:
        """The configuration (it holds no key)."""
        return self._config

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self._config.model!r}, base_url={self._config.base_url!r})"

    async def __aenter__(self) -> OpenAIClient:
        self._client()  # made here, not within the first request's timeout (loading TLS is slow)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it. Safe to call twice."""
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def decide(self, context: Context) -> DecisionResult:
        """Ask the model for the next step of ``context``.

        The whole request, streamed or not, runs within ``config.timeout``.

        Raises:
            InvalidDeciderConfig: a tool definition in the context is malformed.
            ModelTimeout: no complete answer within the timeout.
            RateLimited: the server answered 429 (``retry_after`` from its
                headers; an invalid header counts as absent).
            ModelUnavailable: the connection failed, the server answered an
                error status or an error object, or the stream was cut.
            InvalidModelOutput: the answer does not validate (see ``_validate``),
                cannot be decoded, or is over ``max_response_bytes``.
        """
        config = self._config
        tools = context.tool_names()
        name = self._reply_type.__name__ if self._reply_type is not None else "reply"
        body = build_request(config, context, self._reply_schema, name)
        log = logger.bind(event="model_call", model=config.model)
        log.debug(
            "model {model} request: {n} messages, {t} tools, stream={s}",
            model=config.model,
            n=len(context.messages),
            t=len(tools),
            s=config.stream,
        )
        started = time.monotonic()
        span_name = f"chat {config.model}"
        with decision_span(span_name, config.model, "openai", context, body) as span:
            try:
                with anyio.move_on_after(config.timeout) as scope:
                    result = await self._ask(body, tools)
                if scope.cancelled_caught:
                    raise ModelTimeout(config.model, config.timeout or 0.0)
            except ModelError as e:
                log.debug("model {model} failed: {error}", model=config.model, error=e)
                raise
            record_result(span, result)
        usage = result.usage
        log.debug(
            "model {model} answered in {ms:.0f} ms: {kinds}, finish_reason={fr}, tokens={tokens}",
            model=config.model,
            ms=(time.monotonic() - started) * 1000,
            kinds=[type(d).__name__ for d in result.decisions],
            fr=result.finish_reason,
            tokens=usage.total_tokens if usage is not None else None,
        )
        return result

    async def _ask(self, body: dict[str, object], tools: tuple[str, ...]) -> DecisionResult:
        config = self._config
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if config.stream:
            headers["Accept"] = "text/event-stream"
        auth = _BearerAuth(self._key) if self._key is not None else None
        received = _Received()
        try:
            async with self._client().stream(
                "POST", config.endpoint, content=encode(body), headers=headers, auth=auth
            ) as response:
                if response.status_code >= 400:
                    text = await self._read(response, received, _ERROR_READ, cut=True)
                    raise self._status_error(response, text)
                content_type = response.headers.get("content-type", "").lower()
                if content_type.startswith("text/event-stream"):
                    draft = await self._read_stream(response, received)
                else:
                    text = await self._read(response, received, config.max_response_bytes)
                    draft = parse_body(config.model, text)
            if self._key is not None:
                self._redact_draft(draft)
            return to_result(
                draft,
                model=config.model,
                tools=tools,
                argument_types=self._argument_types,
                reply_type=self._reply_type,
            )
        except httpx.TimeoutException as e:
            raise ModelTimeout(config.model, config.timeout or config.connect_timeout) from e
        except httpx.HTTPError as e:
            reason = self._redact(f"{type(e).__name__}: {e}".encode())
            raise ModelUnavailable(config.model, reason) from e
        except GreenroomError:
            raise
        except Exception as e:  # the last net: whatever a hostile answer provokes is typed
            raise InvalidModelOutput(
                config.model,
                f"the answer could not be read: {type(e).__name__}",
                self._redact_received(received),
            ) from e

    async def _read(
        self, response: httpx.Response, received: _Received, limit: int | None, *, cut: bool = False
    ) -> str:
        """The body as redacted text, at most ``limit`` bytes: past it, cut or refused."""
        async for chunk in response.aiter_bytes():
            received.add(chunk)
            if limit is not None and received.size > limit:
                if cut:
                    return self._redact_received(received, limit)
                raise self._too_large(received, limit)
        return self._redact_received(received)

    async def _read_stream(self, response: httpx.Response, received: _Received) -> Draft:
        model = self._config.model
        limit = self._config.max_response_bytes
        events = SseDecoder()
        assembler = StreamAssembler(model)
        received.keep_only(4 * RAW_KEPT)  # UTF-8: at most 4 bytes a character
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in response.aiter_bytes():
            received.add(chunk)
            if limit is not None and received.size > limit:
                raise self._too_large(received, limit)
            for data in events.feed(text.decode(chunk)):
                assembler.feed(self._redact_text(data))
                if assembler.done:
                    break
            if assembler.done:
                break
        if not assembler.finished:
            raise ModelUnavailable(model, "the stream ended before the reply was complete")
        return assembler.result()

    def _too_large(self, received: _Received, limit: int) -> InvalidModelOutput:
        return InvalidModelOutput(
            self._config.model,
            f"expected at most max_response_bytes={limit} bytes, got more; reading stopped",
            self._redact_received(received, limit),
            raw_length=received.size,
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            config = self._config
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
                follow_redirects=False,
            )
        return self._http

    def _redact(self, data: bytes) -> str:
        return self._redact_text(data.decode("utf-8", errors="replace"))

    def _redact_draft(self, draft: Draft) -> None:
        # A key split across stream chunks escapes the per-chunk redaction: redact the whole.
        redact = self._redact_text
        draft.content = redact(draft.content) if draft.content is not None else None
        draft.refusal = redact(draft.refusal) if draft.refusal is not None else None
        for call in draft.calls:
            call.name = redact(call.name)
            call.arguments = redact(call.arguments)

    def _redact_text(self, text: str) -> str:
        if self._key is not None:
            text = text.replace(self._key.reveal(), _REDACTED)
        return text

    def _redact_received(self, received: _Received, limit: int | None = None) -> str:
        """What was received (up to ``limit`` bytes), redacted.

        Text cut short may end in the first characters of the key: they go too.
        """
        text = self._redact_text(received.text(limit))
        cut = limit is not None and limit < received.size
        if self._key is not None and (cut or not received.complete):
            key = self._key.reveal()
            for n in range(min(len(key) - 1, len(text)), 0, -1):
                if text.endswith(key[:n]):
                    return text[:-n]
        return text

    def _status_error(self, response: httpx.Response, text: str) -> ModelError:
        model = self._config.model
        if response.status_code == 429:
            return RateLimited(model, retry_after(response.headers))
        return ModelUnavailable(
            model, f"the server answered: {_error_message(text)}", response.status_code
        )


class _Received:
    """The bytes of one response so far: all counted, the first ``keep`` kept (all: ``None``)."""

    __slots__ = ("_keep", "_kept", "_parts", "size")

    def __init__(self) -> None:
        self._keep: int | None = None
        self._parts: list[bytes] = []
        self._kept = 0
        self.size = 0

    def keep_only(self, keep: int) -> None:
        """Keep only about ``keep`` bytes from now on (a stream: only an error needs them)."""
        self._keep = keep

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._keep is None or self._kept < self._keep:
            self._parts.append(chunk)
            self._kept += len(chunk)

    @property
    def complete(self) -> bool:
        """Whether every byte received is kept."""
        return self._kept == self.size

    def text(self, limit: int | None = None) -> str:
        """What was kept, as text; only the first ``limit`` bytes when given."""
        data = b"".join(self._parts)
        return (data if limit is None else data[:limit]).decode("utf-8", errors="replace")


class _ErrorDetail(msgspec.Struct):
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None


def _error_message(text: str) -> str:
    try:
        error = msgspec.json.decode(text, type=_ErrorBody).error
    except Exception:  # any body that is not the usual error object is quoted as it is
        error = None
    if isinstance(error, _ErrorDetail) and error.message is not None:
        text = error.message
    elif isinstance(error, str):
        text = error
    text = text.strip() or "(empty body)"
    return text if len(text) <= _ERROR_TEXT else text[:_ERROR_TEXT] + "..."
