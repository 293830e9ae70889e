"""HttpClient against real servers on 127.0.0.1: allowlist, redirects, size, timeouts, JSON."""

from __future__ import annotations

import socket

import httpx
import pytest

from greenroom.tools import (
    BadResponse,
    Fetch,
    FetchInput,
    HostNotAllowed,
    HttpClient,
    HttpTimeout,
    HttpTimeouts,
    HttpUnavailable,
    InvalidUrl,
    ResponseTooLarge,
    TooManyRedirects,
    redact_url,
)
from tests.tools._server import LocalServer, drip, endless, hang, redirect, reply

pytestmark = pytest.mark.anyio

SECRET = "s3cret-token"


def client(*servers: LocalServer, **options: object) -> HttpClient:
    return HttpClient(allow_hosts=[s.host for s in servers], **options)  # type: ignore[arg-type]


async def test_a_request_to_an_allowed_host_returns_the_response(server: LocalServer) -> None:
    server.routes["/hello"] = reply(200, b"hi", {"Content-Type": "text/plain"})
    async with client(server) as http:
        response = await http.request("GET", server.url("/hello"))
    assert (response.status, response.body, response.headers["content-type"]) == (
        200,
        b"hi",
        "text/plain",
    )


async def test_a_host_not_allowed_is_refused_before_any_request(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    async with client(server) as http:
        with pytest.raises(HostNotAllowed) as info:
            await http.request("GET", elsewhere.url("/x"))
    assert info.value.redirected is False
    assert info.value.host == elsewhere.url("")  # the origin: scheme, host, port
    assert elsewhere.requests == []


async def test_a_redirect_to_a_host_not_allowed_is_refused_and_that_host_gets_nothing(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/go"] = redirect(elsewhere.url("/landing"))
    async with client(server) as http:
        with pytest.raises(HostNotAllowed) as info:
            await http.request("GET", server.url("/go"))
    assert info.value.redirected is True
    assert [r.path for r in server.requests] == ["/go"]
    assert elsewhere.requests == []


async def test_each_hop_of_a_redirect_chain_is_checked(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/a"] = redirect("/b", 301)
    server.routes["/b"] = redirect("/c", 307)
    server.routes["/c"] = redirect(elsewhere.url("/d"), 308)
    async with client(server) as http:
        with pytest.raises(HostNotAllowed):
            await http.request("GET", server.url("/a"))
    assert [r.path for r in server.requests] == ["/a", "/b", "/c"]
    assert elsewhere.requests == []


async def test_redirects_between_allowed_hosts_are_followed(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/start"] = redirect("/middle")
    server.routes["/middle"] = redirect(elsewhere.url("/end"))
    elsewhere.routes["/end"] = reply(200, b"arrived")
    async with client(server, elsewhere) as http:
        response = await http.request("GET", server.url("/start"))
    assert response.body == b"arrived"
    assert response.url == elsewhere.url("/end")


async def test_a_303_after_a_post_becomes_a_get_without_the_body(server: LocalServer) -> None:
    server.routes["/form"] = redirect("/done", 303)
    server.routes["/done"] = reply(200, b"ok")
    async with client(server) as http:
        await http.request("POST", server.url("/form"), json={"a": 1})
    assert [(r.method, r.body) for r in server.requests] == [("POST", b'{"a":1}'), ("GET", b"")]


async def test_a_redirect_loop_stops_at_max_redirects(server: LocalServer) -> None:
    server.routes["/loop"] = redirect("/loop")
    async with client(server, max_redirects=3) as http:
        with pytest.raises(TooManyRedirects):
            await http.request("GET", server.url("/loop"))
    assert len(server.requests) == 4


async def test_credentials_go_only_to_their_host_and_never_into_errors(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/api"] = redirect(elsewhere.url("/other"))
    elsewhere.routes["/other"] = reply(200, b"ok")
    credentials = {server.host: {"Authorization": f"Bearer {SECRET}"}}
    async with client(server, elsewhere, credentials=credentials) as http:
        await http.request("GET", server.url("/api"), headers={"Cookie": f"s={SECRET}"})
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in elsewhere.requests[0].headers
    assert "cookie" not in elsewhere.requests[0].headers


async def test_errors_show_no_userinfo_query_or_header(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/slow"] = hang
    url = f"http://user:{SECRET}@{elsewhere.host}/x?token={SECRET}"
    credentials = {server.host: {"Authorization": SECRET}}
    timeouts = HttpTimeouts(read=0.1)
    async with client(server, credentials=credentials, timeouts=timeouts) as http:
        with pytest.raises(HostNotAllowed) as refused:
            await http.request("GET", url)
        with pytest.raises(HttpTimeout) as slow:
            await http.request("GET", server.url(f"/slow?key={SECRET}"))
    for error in (refused.value, slow.value):
        shown = f"{error} {error.__cause__} {error.args} {vars(error)}"
        assert SECRET not in shown
    assert redact_url(url) == f"http://{elsewhere.host}/x"


async def test_a_declared_length_over_the_limit_is_refused_unread(server: LocalServer) -> None:
    server.routes["/big"] = reply(200, b"y" * 5000)
    async with client(server, max_response_bytes=1000) as http:
        with pytest.raises(ResponseTooLarge) as info:
            await http.request("GET", server.url("/big"))
    assert (info.value.limit, info.value.declared) == (1000, 5000)


async def test_an_endless_body_is_cut_off_at_the_limit(server: LocalServer) -> None:
    server.routes["/endless"] = endless
    async with client(server, max_response_bytes=100_000) as http:
        with pytest.raises(ResponseTooLarge) as info:
            await http.request("GET", server.url("/endless"))
    assert info.value.declared is None


async def test_a_body_at_the_limit_is_returned_whole(server: LocalServer) -> None:
    server.routes["/exact"] = reply(200, b"z" * 1000)
    async with client(server, max_response_bytes=1000) as http:
        response = await http.request("GET", server.url("/exact"))
    assert len(response.body) == 1000


async def test_a_server_that_never_answers_hits_the_read_timeout(server: LocalServer) -> None:
    server.routes["/hang"] = hang
    async with client(server, timeouts=HttpTimeouts(read=0.1)) as http:
        with pytest.raises(HttpTimeout) as info:
            await http.request("GET", server.url("/hang"))
    assert (info.value.phase, info.value.timeout) == ("read", 0.1)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert isinstance(info.value, TimeoutError)


async def test_a_slow_drip_hits_the_total_deadline(server: LocalServer) -> None:
    server.routes["/drip"] = drip(server.closing)
    timeouts = HttpTimeouts(read=5.0, total=0.3)
    async with client(server, timeouts=timeouts, max_response_bytes=10**9) as http:
        with pytest.raises(HttpTimeout) as info:
            await http.request("GET", server.url("/drip"))
    assert info.value.phase == "total"


async def test_a_refused_connection_is_http_unavailable_chained_from_httpx() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with HttpClient(allow_hosts=[f"127.0.0.1:{port}"]) as http:
        with pytest.raises(HttpUnavailable) as info:
            await http.request("GET", f"http://127.0.0.1:{port}/")
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_a_body_that_is_not_json_is_a_bad_response(server: LocalServer) -> None:
    server.routes["/json"] = reply(200, b"{not json")
    async with client(server) as http:
        with pytest.raises(BadResponse) as info:
            await http.get_json(server.url("/json"))
    assert info.value.status == 200
    assert "not valid JSON" in str(info.value)


async def test_valid_json_decodes(server: LocalServer) -> None:
    server.routes["/json"] = reply(200, b'{"a": [1, 2]}')
    async with client(server) as http:
        assert await http.get_json(server.url("/json")) == {"a": [1, 2]}


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "/relative", "http://"])
async def test_a_url_that_is_not_absolute_http_is_refused(url: str) -> None:
    async with HttpClient(allow_hosts=["127.0.0.1"]) as http:
        with pytest.raises(InvalidUrl):
            await http.request("GET", url)


async def test_the_fetch_tool_returns_status_type_and_text(server: LocalServer) -> None:
    server.routes["/page"] = reply(404, b"gone", {"Content-Type": "text/plain"})
    async with client(server) as http:
        output = await Fetch(http).call(FetchInput(url=server.url("/page")))
    assert (output.status, output.content_type, output.text) == (404, "text/plain", "gone")


def test_an_allowlist_entry_with_a_path_is_refused() -> None:
    from greenroom import InvalidSpec

    with pytest.raises(InvalidSpec):
        HttpClient(allow_hosts=["example.com/path"])


# -- the allowlist matches scheme, host and effective port exactly ------------


async def test_a_bare_host_entry_allows_its_default_ports_and_no_other(
    server: LocalServer,
) -> None:
    async with HttpClient(allow_hosts=["127.0.0.1"]) as http:
        with pytest.raises(HostNotAllowed) as info:
            await http.request("GET", server.url("/x"))
        assert http.allowed_origins == ("http://127.0.0.1:80", "https://127.0.0.1:443")
    assert info.value.host == server.url("")
    assert server.requests == []


@pytest.mark.parametrize("entry", ["127.0.0.1:80", "http://127.0.0.1", "127.0.0.1:443"])
async def test_an_entry_on_a_default_port_is_that_port_only(
    server: LocalServer, entry: str
) -> None:
    async with HttpClient(allow_hosts=[entry]) as http:
        with pytest.raises(HostNotAllowed):
            await http.request("GET", server.url("/x"))
    assert server.requests == []


async def test_a_redirect_to_another_port_of_an_allowed_host_is_refused(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/go"] = redirect(elsewhere.url("/6379"))
    async with HttpClient(allow_hosts=[server.host, "127.0.0.1:80", "127.0.0.1"]) as http:
        with pytest.raises(HostNotAllowed) as info:
            await http.request("GET", server.url("/go"))
    assert info.value.redirected is True
    assert info.value.host == elsewhere.url("")
    assert [r.path for r in server.requests] == ["/go"]
    assert elsewhere.requests == []


async def test_an_entry_with_a_scheme_allows_that_scheme_only(server: LocalServer) -> None:
    async with HttpClient(allow_hosts=[f"https://127.0.0.1:{server.port}"]) as http:
        with pytest.raises(HostNotAllowed):
            await http.request("GET", server.url("/x"))  # http, not https
        assert http.allows(f"https://127.0.0.1:{server.port}/x")
    assert server.requests == []


def test_the_port_of_an_entry_names_its_scheme_when_it_is_a_default_port() -> None:
    http = HttpClient(allow_hosts=["10.0.0.1:443", "10.0.0.2:80", "10.0.0.3:8080"])
    assert http.allows("https://10.0.0.1/")
    assert not http.allows("http://10.0.0.1:443/")
    assert http.allows("http://10.0.0.2/")
    assert not http.allows("https://10.0.0.2:80/")
    assert http.allows("http://10.0.0.3:8080/")
    assert http.allows("https://10.0.0.3:8080/")
    assert not http.allows("http://10.0.0.3/")


async def test_credentials_of_a_bare_host_go_to_no_other_port(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/a"] = reply(200, b"a")
    elsewhere.routes["/b"] = reply(200, b"b")
    credentials = {"127.0.0.1": {"Authorization": f"Bearer {SECRET}-bare"}}
    allowed = ["127.0.0.1", server.host, elsewhere.host]
    async with HttpClient(allow_hosts=allowed, credentials=credentials) as http:
        await http.request("GET", server.url("/a"))
        await http.request("GET", elsewhere.url("/b"))
    assert "authorization" not in server.requests[0].headers
    assert "authorization" not in elsewhere.requests[0].headers


async def test_a_redirect_to_another_allowed_origin_carries_only_that_origins_credentials(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/api"] = redirect(elsewhere.url("/next"))
    server.routes["/back"] = reply(200, b"back")
    elsewhere.routes["/next"] = redirect(server.url("/back"))
    credentials = {
        server.host: {"Authorization": f"Bearer {SECRET}-first"},
        elsewhere.host: {"X-Api-Key": f"{SECRET}-second"},
    }
    async with client(server, elsewhere, credentials=credentials) as http:
        response = await http.request("GET", server.url("/api"))
    assert response.body == b"back"
    first, back = server.requests
    [second] = elsewhere.requests
    assert first.headers["authorization"] == f"Bearer {SECRET}-first"
    assert "x-api-key" not in first.headers
    assert second.headers["x-api-key"] == f"{SECRET}-second"
    assert "authorization" not in second.headers  # the first origin's stay behind
    assert back.headers["authorization"] == f"Bearer {SECRET}-first"
    assert "x-api-key" not in back.headers


async def test_a_url_with_userinfo_is_refused_and_nothing_is_sent(
    server: LocalServer, elsewhere: LocalServer
) -> None:
    server.routes["/go"] = redirect(f"http://user:{SECRET}@{server.host}/x")
    async with client(server) as http:
        with pytest.raises(HostNotAllowed):  # the host is 'evil', whatever comes before @
            await http.request("GET", f"http://{server.host}@{elsewhere.host}/x")
        with pytest.raises(InvalidUrl) as info:
            await http.request("GET", f"http://user:{SECRET}@{server.host}/x")
        with pytest.raises(BadResponse):
            await http.request("GET", server.url("/go"))
        assert not http.allows(f"http://user@{server.host}/x")
    assert SECRET not in str(info.value)
    assert [r.path for r in server.requests] == ["/go"]
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    "url", ["http://xn--zz/", "http://exa%6dple.com/", "http://127.0.0.1./", "http://[::1%25lo]/"]
)
async def test_a_host_no_entry_can_match_is_a_typed_error(url: str) -> None:
    async with HttpClient(allow_hosts=["example.com", "127.0.0.1", "[::1]"]) as http:
        with pytest.raises((InvalidUrl, HostNotAllowed)):
            await http.request("GET", url)
        assert not http.allows(url)


@pytest.mark.parametrize(
    "entry",
    ["127.0.0.1:0", "h:65536", "ftp://h", "http://h/p", "u@h", "h?q", "", "h:", "[::1", "h: 80"],
)
def test_a_malformed_entry_is_refused(entry: str) -> None:
    from greenroom import InvalidSpec

    with pytest.raises(InvalidSpec):
        HttpClient(allow_hosts=[entry])


def test_credentials_must_name_an_allowed_origin_once() -> None:
    from greenroom import InvalidSpec

    header = {"Authorization": "Bearer x"}
    with pytest.raises(InvalidSpec, match="does not allow"):
        HttpClient(allow_hosts=["127.0.0.1:8080"], credentials={"127.0.0.1": header})
    with pytest.raises(InvalidSpec, match="two credentials entries"):
        HttpClient(
            allow_hosts=["example.com"],
            credentials={"example.com": header, "https://example.com": header},
        )
