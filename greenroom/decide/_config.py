"""How to reach one OpenAI-compatible model: plain, validated data (the API key is not in it)."""

from __future__ import annotations

import msgspec

from greenroom.decide._errors import InvalidDeciderConfig

__all__ = ["ModelConfig"]


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One model behind an OpenAI-compatible chat-completions endpoint.

    The API key is deliberately not a field, so a config can be logged,
    traced and compared safely: pass it to ``OpenAIClient(api_key=)``, or
    set the environment variable named by ``api_key_env``.

    Attributes:
        model: the model name sent in each request (``"gpt-4o-mini"``,
            ``"llama3.1"``...). Also the name the result records.
        base_url: the API root, up to and including ``/v1``; requests go to
            ``{base_url}/chat/completions`` (default OpenAI's).
        api_key_env: the environment variable read for the key when none is
            passed (default ``"OPENAI_API_KEY"``). With no key at all, no
            ``Authorization`` header is sent (Ollama, llama.cpp need none).
        timeout: seconds for one whole request, streamed or not, from
            connect to the last byte (default 60.0; ``None``: no limit).
        connect_timeout: seconds to open the connection (default 10.0).
        stream: ask for a streamed (SSE) reply (default ``False``).
        stream_usage: when streaming, ask for token usage in the last chunk
            (``stream_options.include_usage``; default ``True``). Turn off for
            a server that rejects the option.
        temperature: sampling temperature sent, or ``None`` to send none
            and use the server's default.
        max_output_tokens: the ``max_tokens`` sent, or ``None`` to send none.
        structured_output: when a reply type is required, also send
            ``response_format`` with its JSON Schema (default ``True``); the
            reply is validated either way.
        extra_body: further request fields, sent as given (vendor options).
        max_response_bytes: the most bytes of a response body read (default
            8 MiB, decoded, streamed or not; ``None``: no limit). A longer
            answer is :class:`InvalidModelOutput`; reading stops there.
    """

    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float | None = 60.0
    connect_timeout: float = 10.0
    stream: bool = False
    stream_usage: bool = True
    temperature: float | None = None
    max_output_tokens: int | None = None
    structured_output: bool = True
    extra_body: dict[str, object] = msgspec.field(default_factory=dict)
    max_response_bytes: int | None = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            _bad("model", self.model, "a non-empty model name")
        if not self.base_url.startswith(("http://", "https://")):
            _bad("base_url", self.base_url, "an http:// or https:// URL ending in /v1")
        if self.timeout is not None and not self.timeout > 0:
            _bad("timeout", self.timeout, "seconds > 0, or None for no limit")
        if not self.connect_timeout > 0:
            _bad("connect_timeout", self.connect_timeout, "seconds > 0")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            _bad("max_output_tokens", self.max_output_tokens, "an int >= 1, or None")
        if self.max_response_bytes is not None and self.max_response_bytes < 1:
            _bad("max_response_bytes", self.max_response_bytes, "bytes >= 1, or None")

    @property
    def endpoint(self) -> str:
        """The chat-completions URL."""
        return self.base_url.rstrip("/") + "/chat/completions"


def _bad(field: str, value: object, expected: str) -> None:
    raise InvalidDeciderConfig(
        f"ModelConfig.{field}", f"expected {expected}, got {value!r}", f"pass {expected}"
    )
