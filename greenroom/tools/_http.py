"""HttpClient: one shared httpx client for HTTP tools: timeouts, a size limit, an allowlist.

Guarantees, for every request:

- The origin of the URL (scheme, host and effective port) is on the
  allowlist, matched exactly (see ``_allowlist`` for the forms of an entry:
  ``"host"`` is ports 443 (https) and 80 (http) only, ``"host:8080"`` that
  port with either scheme, ``"https://host:8443"`` exactly that). It is
  checked before anything is sent, and again for every redirect, which the
  client follows itself: a redirect to an origin not allowed raises
  :class:`HostNotAllowed` and that origin receives nothing.
- A URL with userinfo (``http://user:pass@host/``, ``http://allowed@evil/``)
  is refused (:class:`InvalidUrl`; a redirect to one is a
  :class:`BadResponse`): credentials are never taken from a URL.
- The body is read as a stream and reading stops at ``max_response_bytes``
  (:class:`ResponseTooLarge`); a ``Content-Length`` over the limit is refused
  before any of the body is read. The limit applies to the decoded body.
- Per-phase timeouts (connect, read, write, pool) and a ``total`` deadline
  over the whole request, redirects and body included.
- Credentials (secret headers per allowlist entry, ``credentials=``) are sent
  to exactly the origins their entry names, and to no other hop of a
  redirect chain: a redirect to another allowed origin does not carry the
  first one's. ``Authorization`` and ``Cookie`` given with a request are
  dropped when a redirect leaves the origin.
- No credential is written anywhere: every credential value (and the token
  after ``Bearer``/``Basic``, and a Basic password) is registered with the
  redactor when the client is made, so a server that echoes one back in a
  body or a header has it cut out of traces, logs, exports and dead letters.
  Errors show URLs as scheme, host, port and path only, and never headers.
- httpx errors are translated into :class:`HttpError` subclasses, chained
  with ``from``.

Use it as an async context manager; the code that opens it closes it::

    async with HttpClient(allow_hosts=["api.example.com"]) as http:
        registry = ToolRegistry([Fetch(http)])
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Self

import anyio
import httpx
import msgspec

from greenroom._errors import InvalidSpec
from greenroom.tools._allowlist import Allowlist, Origin, entry_origins, origin_of, origin_text
from greenroom.tools._errors import (
    BadResponse,
    HostNotAllowed,
    HttpError,
    HttpTimeout,
    HttpUnavailable,
    InvalidUrl,
    ResponseTooLarge,
    TooManyRedirects,
)
from greenroom.trace import register_secret

__all__ = ["HttpClient", "HttpResponse", "HttpTimeouts", "redact_url"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ORIGIN_BOUND = ("authorization", "proxy-authorization", "cookie")
_USERINFO = re.compile(r"//[^/@?#]*@")


class HttpTimeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts of an :class:`HttpClient`, in seconds; each must be finite and > 0.

    Attributes:
        connect: to open a connection (default 5).
        read: between two reads of the response (default 30).
        write: between two writes of the request (default 30).
        pool: to get a connection from the pool (default 5).
        total: for the whole request, redirects and body included (default 60).
    """

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0
    total: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "total"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidSpec(f"HttpTimeouts.{name} must be a finite number > 0, got {value!r}")


class HttpResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A complete response within the size limit.

    Attributes:
        method: the method of the final request (a 303 turns a POST into a GET).
        status: the status code of the final response (after redirects).
        url: the final URL, redacted (no credentials, no query string).
        headers: the response headers, names lower-cased (``set-cookie`` dropped).
        body: the decoded body.
    """

    method: str
    status: int
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON.

        Raises:
            BadResponse: the body is not valid JSON.
        """
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as exc:
            raise BadResponse(
                self.method, self.url, self.status, f"the body is not valid JSON: {exc}"
            ) from exc

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


def redact_url(url: httpx.URL | str) -> str:
    """``url`` as scheme, host, port and path: no credentials, query or fragment."""
    if isinstance(url, str):
        text = url
        try:
            url = httpx.URL(text)
        except (httpx.InvalidURL, TypeError, ValueError):
            return _USERINFO.sub("//", text.split("?", 1)[0].split("#", 1)[0])[:200]
    port = f":{url.port}" if url.port is not None else ""
    shown = _shown_host(url)
    host = f"[{shown}]" if ":" in shown else shown
    return f"{url.scheme}://{host}{port}{url.path}"


def _host_port(url: httpx.URL) -> str:
    origin = origin_of(url)
    if origin is not None:
        return origin_text(origin)
    host = _shown_host(url)
    return host if url.port is None else f"{host}:{url.port}"


def _shown_host(url: httpx.URL) -> str:
    # httpx decodes IDNA lazily: .host raises for an invalid A-label ("xn--zz").
    try:
        return url.host
    except ValueError:
        return url.raw_host.decode("ascii", errors="replace")


def _register_credential(value: str) -> None:
    """Make a credential header's value, and the parts a server may echo, known secrets."""
    register_secret(value)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if not token:
        return
    register_secret(token)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return
        register_secret(decoded)
        register_secret(decoded.partition(":")[2])


class HttpClient:
    """One shared httpx ``AsyncClient`` for HTTP tools, with the guarantees above.

    Args:
        allow_hosts: the origins requests may go to, matched exactly:
            ``"api.example.com"`` (https on 443 and http on 80, no other
            port), ``"127.0.0.1:8080"`` (that port, http or https),
            ``"api.example.com:443"`` (https only), ``"api.example.com:80"``
            (http only), ``"https://api.example.com:8443"`` (exactly that
            origin), ``"[::1]:8080"``. Required; an empty allowlist allows
            nothing.
        timeouts: per-phase and total timeouts.
        max_response_bytes: the most body bytes read (default 1 MiB).
        max_redirects: the most redirects followed (default 5; 0 follows none).
        headers: headers for every request (not secret: they go to every
            allowed origin).
        credentials: secret headers per allowlist entry, written the same
            way; sent only to the origins that entry names, each of which
            must be allowed. Give ``"https://host"`` to keep them off plain
            http. Their values are registered with the redactor.
        trust_env: use proxy settings from the environment (default ``False``).
        transport: an httpx transport, for tests and custom networking.

    Raises:
        InvalidSpec: a negative limit, a malformed allowlist or credentials
            entry, credentials for an origin not allowed, or two credentials
            entries naming the same origin.
    """

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str],
        timeouts: HttpTimeouts | None = None,
        max_response_bytes: int = 1 << 20,
        max_redirects: int = 5,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        trust_env: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_response_bytes < 0 or max_redirects < 0:
            raise InvalidSpec(
                f"max_response_bytes and max_redirects must be ints >= 0, got "
                f"{max_response_bytes!r} and {max_redirects!r}"
            )
        self.timeouts = timeouts or HttpTimeouts()
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self._allowlist = Allowlist(allow_hosts)
        self._credentials = self._credentials_by_origin(credentials or {})
        t = self.timeouts
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            follow_redirects=False,
            headers=dict(headers or {}),
            trust_env=trust_env,
            transport=transport,
        )

    def _credentials_by_origin(
        self, credentials: Mapping[str, Mapping[str, str]]
    ) -> dict[Origin, dict[str, str]]:
        by_origin: dict[Origin, dict[str, str]] = {}
        for entry, values in credentials.items():
            if not isinstance(values, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in values.items()
            ):
                raise InvalidSpec(
                    f"credentials[{entry!r}] must map header names to str values, "
                    f"got a {type(values).__name__}"
                )
            for origin in sorted(entry_origins(entry)):
                if origin not in self._allowlist.origins:
                    raise InvalidSpec(
                        f"credentials are given for {origin_text(origin)} (entry {entry!r}), "
                        "which allow_hosts does not allow; allow it, or fix the entry"
                    )
                if origin in by_origin:
                    raise InvalidSpec(
                        f"two credentials entries name {origin_text(origin)}; give one"
                    )
                by_origin[origin] = dict(values)
            for value in values.values():
                _register_credential(value)
        return by_origin

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """The allowlist, as given."""
        return self._allowlist.entries

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """The origins the allowlist names, as ``scheme://host:port``, sorted."""
        return tuple(origin_text(o) for o in sorted(self._allowlist.origins))

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may be sent: an allowed origin and no userinfo.

        Never raises: a URL that does not parse is not allowed.
        """
        return self._allowlist.permits(url)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the shared client and its connections."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: object = None,
        content: bytes | None = None,
    ) -> HttpResponse:
        """Send a request, follow allowed redirects, and read the body within the limit.

        Redirects 301/302/303 with a body-carrying method become GET without
        the body (as browsers and httpx do); 307/308 repeat the request.
        A response is returned whatever its status.

        Raises:
            InvalidUrl: ``url`` is not an absolute http(s) URL.
            HostNotAllowed: its host, or a redirect's, is not allowed.
            TooManyRedirects: more than ``max_redirects`` redirects.
            ResponseTooLarge: the body is over ``max_response_bytes``.
            HttpTimeout: a phase, or the total, timed out.
            HttpUnavailable: the connection failed.
            BadResponse: a redirect without a usable ``Location``.
        """
        method = method.upper()
        current = self._parse(method, url)
        body_json, body = json, content
        extra = dict(headers or {})
        first = origin_of(current)
        try:
            with anyio.fail_after(self.timeouts.total):
                for hop in range(self.max_redirects + 1):
                    if current.scheme not in ("http", "https"):
                        raise InvalidUrl(method, redact_url(current), "only http and https")
                    origin = origin_of(current)
                    if origin is None or origin not in self._allowlist.origins:
                        raise HostNotAllowed(
                            method,
                            redact_url(current),
                            _host_port(current),
                            self.allowed_hosts,
                            redirected=hop > 0,
                        )
                    if current.userinfo:
                        raise InvalidUrl(
                            method,
                            redact_url(current),
                            "it has userinfo (user@); give credentials to HttpClient(credentials=)",
                        )
                    sent = dict(extra)
                    if origin != first:
                        sent = {k: v for k, v in sent.items() if k.lower() not in _ORIGIN_BOUND}
                    # Only this hop's own origin's credentials: never the previous hop's.
                    sent.update(self._credentials.get(origin, {}))
                    request = self._client.build_request(
                        method,
                        current,
                        params=params if hop == 0 else None,
                        headers=sent,
                        json=body_json,
                        content=body,
                    )
                    response = await self._client.send(request, stream=True)
                    try:
                        if response.status_code in _REDIRECTS:
                            current, method, moved = self._next(response, method, current)
                            if moved:
                                body_json, body = None, None
                            continue
                        data = await self._read(response, method, current)
                    finally:
                        await response.aclose()
                    return HttpResponse(
                        method=method,
                        status=response.status_code,
                        url=redact_url(current),
                        headers={
                            k.lower(): v
                            for k, v in response.headers.items()
                            if k.lower() != "set-cookie"
                        },
                        body=data,
                    )
                raise TooManyRedirects(method, redact_url(current), self.max_redirects)
        except HttpError:
            raise
        except httpx.TimeoutException as exc:
            raise HttpTimeout(method, redact_url(current), *self._phase(exc)) from exc
        except httpx.TransportError as exc:
            raise HttpUnavailable(method, redact_url(current), type(exc).__name__) from exc
        except TimeoutError as exc:
            raise HttpTimeout(method, redact_url(current), "total", self.timeouts.total) from exc

    async def get_json(self, url: str, *, params: Mapping[str, str] | None = None) -> object:
        """GET ``url`` and decode its body as JSON (any status).

        Raises:
            BadResponse: the body is not valid JSON; and every error of :meth:`request`.
        """
        response = await self.request("GET", url, params=params)
        return response.json()

    def _parse(self, method: str, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise InvalidUrl(method, redact_url(str(url)), "it does not parse") from exc
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise InvalidUrl(method, redact_url(parsed), "only absolute http and https URLs")
        return parsed

    def _next(
        self, response: httpx.Response, method: str, current: httpx.URL
    ) -> tuple[httpx.URL, str, bool]:
        location = response.headers.get("location")
        if not location:
            raise BadResponse(
                method, redact_url(current), response.status_code, "a redirect without Location"
            )
        try:
            target = current.join(location)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise BadResponse(
                method, redact_url(current), response.status_code, "a redirect to a bad URL"
            ) from exc
        if target.userinfo:
            raise BadResponse(
                method,
                redact_url(current),
                response.status_code,
                "a redirect to a URL with userinfo (user@), which is never followed",
            )
        status = response.status_code
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            return target, "GET", True
        return target, method, False

    async def _read(self, response: httpx.Response, method: str, url: httpx.URL) -> bytes:
        limit = self.max_response_bytes
        declared: int | None = None
        length = response.headers.get("content-length")
        if length is not None and length.isdigit():
            declared = int(length)
            if declared > limit:
                raise ResponseTooLarge(method, redact_url(url), limit, declared)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(method, redact_url(url), limit, declared)
            chunks.append(chunk)
        return b"".join(chunks)

    def _phase(self, exc: httpx.TimeoutException) -> tuple[str, float | None]:
        t = self.timeouts
        if isinstance(exc, httpx.ConnectTimeout):
            return "connect", t.connect
        if isinstance(exc, httpx.ReadTimeout):
            return "read", t.read
        if isinstance(exc, httpx.WriteTimeout):
            return "write", t.write
        return "pool", t.pool
