"""The allowlist matcher, as a property: an entry allows a URL iff scheme, host and port match.

URLs and entries are built from parts: a host identity spelled in any of its
equal spellings (case, a trailing dot, IDNA or its punycode, an IPv6 literal
compressed or not), a scheme, an explicit port or none, userinfo or none.
The expected answer comes from the parts alone, by the documented rule:

- an entry with a scheme names that scheme on its port (the scheme's default
  when it gives none);
- ``host`` names https:443 and http:80; ``host:443`` https only, ``host:80``
  http only, ``host:N`` both schemes on N;
- a URL's effective port is its port, else its scheme's default;
- a URL with userinfo is never allowed.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from greenroom.tools import HttpClient
from greenroom.tools._allowlist import Allowlist
from tests._fuzz import FUZZ_SETTINGS

# Each identity, with spellings that name the same host. "127.1" and
# "::ffff:127.0.0.1" reach 127.0.0.1 through the resolver, but are not
# spelled as it: the matcher refuses them (strict), so they are identities
# of their own here.
HOSTS: dict[str, tuple[str, ...]] = {
    "example.com": ("example.com", "EXAMPLE.COM", "Example.Com.", "example.com."),
    "api.example.com": ("api.example.com", "API.example.com."),
    "exämple.com": ("exämple.com", "EXÄMPLE.com", "xn--exmple-cua.com", "XN--EXMPLE-CUA.COM."),
    "example.com, Cyrillic e": ("\u0435xample.com", "xn--xample-2of.com"),
    "localhost": ("localhost", "LOCALHOST", "localhost."),
    "127.0.0.1": ("127.0.0.1",),
    "127.1": ("127.1",),
    "::1": ("[::1]", "[0:0:0:0:0:0:0:1]", "[0::1]"),
    "2001:db8::1": ("[2001:db8::1]", "[2001:DB8::1]", "[2001:db8:0:0:0:0:0:1]"),
    "::ffff:127.0.0.1": ("[::ffff:127.0.0.1]",),
}
IDENTITIES = sorted(HOSTS)
PORTS = (None, 80, 443, 8080, 6379, 22)
DEFAULT = {"http": 80, "https": 443}


def expected_origins(
    scheme: str | None, identity: str, port: int | None
) -> set[tuple[str, str, int]]:
    if scheme is not None:
        return {(scheme, identity, DEFAULT[scheme] if port is None else port)}
    if port is None:
        return {("https", identity, 443), ("http", identity, 80)}
    if port in (80, 443):
        return {("http" if port == 80 else "https", identity, port)}
    return {("http", identity, port), ("https", identity, port)}


@st.composite
def spelled(draw: st.DrawFn) -> tuple[str, str]:
    identity = draw(st.sampled_from(IDENTITIES))
    return identity, draw(st.sampled_from(HOSTS[identity]))


@st.composite
def entries(draw: st.DrawFn) -> tuple[str, tuple[str | None, str, int | None]]:
    identity, host = draw(spelled())
    scheme = draw(st.sampled_from([None, "http", "https"]))
    port = draw(st.sampled_from(PORTS))
    if scheme is None and port is None and host.startswith("[") and draw(st.booleans()):
        host = host[1:-1]  # a bare IPv6 address is an entry too
    text = host if port is None else f"{host}:{port}"
    if scheme is not None:
        text = f"{draw(st.sampled_from([scheme, scheme.upper()]))}://{text}"
    return text, (scheme, identity, port)


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, tuple[str, str, int, bool]]:
    identity, host = draw(spelled())
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.sampled_from(PORTS))
    userinfo = draw(st.sampled_from(["", "", "", "user@", "user:pw@", "example.com@"]))
    authority = host if port is None else f"{host}:{port}"
    shown = draw(st.sampled_from([scheme, scheme.upper()]))
    path = draw(st.sampled_from(["/", "/x", "/a?b=c", ""]))
    url = f"{shown}://{userinfo}{authority}{path}"
    return url, (scheme, identity, DEFAULT[scheme] if port is None else port, bool(userinfo))


@settings(parent=FUZZ_SETTINGS, max_examples=400)
@given(entry=entries(), url=urls())
def test_an_entry_allows_a_url_iff_scheme_host_and_effective_port_are_equal(
    entry: tuple[str, tuple[str | None, str, int | None]],
    url: tuple[str, tuple[str, str, int, bool]],
) -> None:
    text, parts = entry
    address, (scheme, identity, port, userinfo) = url
    expected = not userinfo and (scheme, identity, port) in expected_origins(*parts)
    # The client's own check (HttpClient.allows is Allowlist.permits), without
    # the cost of an httpx client per example.
    assert Allowlist([text]).permits(address) is expected, (text, address)


@settings(parent=FUZZ_SETTINGS, max_examples=200)
@given(identity=st.sampled_from(IDENTITIES), data=st.data())
def test_every_spelling_of_a_host_allows_every_other(identity: str, data: st.DataObject) -> None:
    spellings = HOSTS[identity]
    entry = data.draw(st.sampled_from(spellings))
    other = data.draw(st.sampled_from(spellings))
    port = data.draw(st.sampled_from([8080, 6379]))
    http = Allowlist([f"{entry}:{port}"])
    assert http.permits(f"https://{other}:{port}/")
    assert http.permits(f"http://{other}:{port}/")
    assert not http.permits(f"http://{other}/")


def test_the_client_answers_as_its_allowlist() -> None:
    http = HttpClient(allow_hosts=["Example.com.:8443"])
    for url in (
        "https://example.com:8443/",
        "http://EXAMPLE.COM:8443",
        "http://u@example.com:8443/",
    ):
        assert http.allows(url) is Allowlist(["example.com:8443"]).permits(url)
