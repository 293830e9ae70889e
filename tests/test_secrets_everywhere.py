"""Secrets planted at every entrance reach no artifact greenroom writes, by default.

One run plants five secrets: a ``Secret`` in a message that fails, an API key
in the OpenAI client's configuration (from the environment) against a loopback
model server, an ``HttpClient`` credential that a loopback server echoes back
in its body and a header, and secret text in an exception raised by a handler
and by a tool. The run writes a sqlite trace store (with the OTel export,
through the real SDK's in-memory exporter), durable sqlite mailboxes and their
dead letters, a loguru file sink (``diagnose=True``: loguru's most revealing
setting) with nothing installed but ``logger.enable("greenroom")``, and the
HTML timeline; then ``greenroom dlq list/show`` and ``greenroom trace
ls/show/html`` run in a fresh process that knows none of the secrets. Every
byte of every file (databases and their write-ahead logs, while open and after
close), the exported spans and the CLI's output is searched for every secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from loguru import logger
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import greenroom as gr
from greenroom.decide import ChatMessage, Context, ModelConfig, ModelError, OpenAIClient
from greenroom.mailbox import SqliteMailboxes
from greenroom.testing import ScriptedError, ScriptedModelServer
from greenroom.tools import (
    PURE,
    Fetch,
    HttpClient,
    Tool,
    ToolAccess,
    ToolBox,
    ToolError,
    ToolRegistry,
)
from greenroom.trace import OtelExporter, Secret, SqliteTraceStore, render_html
from tests.tools._server import Request, respond, serving

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Each secret is a plain string until greenroom is given it, except the two
# a program wraps itself. None is registered anywhere else in the test suite.
MESSAGE_SECRET = "sk-MESSAGE-4f1d2c9a77e0"
API_KEY = "sk-OPENAI-8c2e61b0f3d5"
CREDENTIAL = "cred-HTTP-5a9e03d7c1b2"
HANDLER_SECRET = "pw-HANDLER-2b7f90e4a6c8"
TOOL_SECRET = "pw-TOOL-61c3aa58d2f9"
PLANTED = (MESSAGE_SECRET, API_KEY, CREDENTIAL, HANDLER_SECRET, TOOL_SECRET)
KEY_ENV = "GREENROOM_TEST_SECRETS_KEY"
ONCE = gr.RetryPolicy(max_attempts=1, backoff=gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0))
CONTEXT = Context(messages=(ChatMessage.user("plan the refund"),))


class Login(gr.Message):
    user: str
    key: Secret


class Plan(gr.Message):
    order: str


class FetchEcho(gr.Message):
    url: str


class Probe(gr.Message):
    url: str


class Break(gr.Message):
    pass


class Leak(gr.Message):
    pass


class HeadersInput(msgspec.Struct, frozen=True, kw_only=True):
    url: str


class HeadersOutput(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    headers: dict[str, str]


class Headers(Tool[HeadersInput, HeadersOutput]):
    """GET a URL and return the response headers (so an echoed header reaches the trace)."""

    name = "headers"
    effect = PURE

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def call(self, input: HeadersInput) -> HeadersOutput:
        response = await self.http.request("GET", input.url)
        return HeadersOutput(status=response.status, headers=response.headers)


class LeakyInput(msgspec.Struct, frozen=True, kw_only=True):
    pass


class LeakyOutput(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Leaky(Tool[LeakyInput, LeakyOutput]):
    """A tool whose backend fails with a message that holds a secret."""

    name = "leaky"
    effect = PURE

    def __init__(self, secret: Secret) -> None:
        self.secret = secret

    async def call(self, input: LeakyInput) -> LeakyOutput:
        raise ConnectionError(f"backend refused password {self.secret.reveal()}")


class Desk(gr.Actor):
    """Fails every message in a way that carries a secret into the error."""

    def __init__(self, model: OpenAIClient, handler_secret: Secret) -> None:
        self.model = model
        self.handler_secret = handler_secret

    @gr.handler
    async def login(self, msg: Login) -> None:
        raise PermissionError(f"login of {msg.user} with {msg.key.reveal()} refused")

    @gr.handler
    async def plan(self, msg: Plan) -> None:
        try:
            await self.model.decide(CONTEXT)
        except ModelError as error:
            key = os.environ[KEY_ENV]  # what a program might do: name the key it used
            raise RuntimeError(f"planning {msg.order} with key {key} failed: {error}") from error

    @gr.handler
    async def fetch(self, msg: FetchEcho) -> None:
        out = await self.ctx.service(ToolBox).call("fetch", {"url": msg.url})
        text = getattr(out, "text", "")
        self.ctx.log.info("the server answered {}", text)
        raise ValueError(f"unexpected answer: {text}")

    @gr.handler
    async def probe(self, msg: Probe) -> None:
        out = await self.ctx.service(ToolBox).call("headers", {"url": msg.url})
        raise ValueError(f"unexpected headers: {getattr(out, 'headers', {})}")

    @gr.handler
    async def broken(self, msg: Break) -> None:
        revealed = self.handler_secret.reveal()  # a local that loguru's diagnose would print
        try:
            raise KeyError(f"no account for {revealed}")
        except KeyError as error:
            self.ctx.log.opt(exception=error).warning("lookup failed")
            raise RuntimeError(f"handler gave up on {revealed}") from error

    @gr.handler
    async def leak(self, msg: Leak) -> None:
        try:
            await self.ctx.service(ToolBox).call("leaky", {})
        except ToolError as error:
            raise RuntimeError(f"tool failed: {error}") from error


async def echo(request: Request, writer: asyncio.StreamWriter) -> None:
    """Echo the request's Authorization header in the body and in a header."""
    auth = request.headers.get("authorization", "")
    await respond(
        writer,
        200,
        f"you sent: {auth}".encode(),
        {"Content-Type": "text/plain", "X-Echo": auth, "X-Token-Echo": auth.split(" ")[-1]},
    )


def _hits(label: str, data: bytes) -> list[str]:
    found = []
    for secret in PLANTED:
        for variant in (secret, secret[3:], secret.encode().hex()):
            if variant.encode() in data:
                found.append(f"{label}: {secret!r} (as {variant!r})")
    return found


def _scan_folder(folder: Path) -> tuple[list[str], list[str]]:
    names, hits = [], []
    for file in sorted(folder.iterdir()):
        if file.is_file():
            names.append(file.name)
            hits += _hits(file.name, file.read_bytes())
    return names, hits


CLI_SCRIPT = """
import contextlib, io, json, sys
from greenroom.cli import main
out = {}
for args in json.loads(sys.argv[1]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        status = main(args)
    out[" ".join(args)] = [status, buffer.getvalue()]
print(json.dumps(out))
"""


def _cli(commands: list[list[str]]) -> dict[str, tuple[int, str]]:
    """Run ``greenroom`` commands in one fresh process (it knows none of the secrets)."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    done = subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return {k: (v[0], v[1]) for k, v in json.loads(done.stdout).items()}


async def test_no_planted_secret_reaches_any_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv(KEY_ENV, API_KEY)
    memory = InMemorySpanExporter()
    log_path = out / "greenroom.log"
    logger.enable("greenroom")
    sink = logger.add(
        log_path,
        level="DEBUG",
        format="{time} {level} {name} {message} | {extra} | {exception}",
        backtrace=True,
        diagnose=True,
    )
    traces_db, mail_db = tmp_path / "traces.db", tmp_path / "mail.db"
    letters: list[gr.DeadLetter] = []
    try:
        async with (
            serving() as server,
            ScriptedModelServer() as model,
            SqliteTraceStore(traces_db, exporters=[OtelExporter(memory, batch=False)]) as traces,
            SqliteMailboxes(mail_db) as boxes,
        ):
            server.routes["/echo"] = echo
            model.push(
                ScriptedError(status=401, message=f"Incorrect API key provided: {API_KEY}"),
            )
            http = HttpClient(
                allow_hosts=[server.host],
                credentials={server.host: {"Authorization": f"Bearer {CREDENTIAL}"}},
            )
            config = ModelConfig(model="m", base_url=model.base_url, api_key_env=KEY_ENV)
            access = ToolAccess(
                ToolRegistry([Fetch(http), Headers(http), Leaky(Secret(TOOL_SECRET))]),
                grants={"Desk": ["fetch", "headers", "leaky"]},
            )
            async with (
                http,
                OpenAIClient(config) as client,
                gr.Runtime(
                    gr.RuntimeConfig(max_message_bytes=None),
                    mailboxes={"durable": boxes},
                    dead_letters=boxes.dead_letters,
                    tracer=traces.tracer,
                    extensions=[access],
                ) as rt,
            ):
                args = (client, Secret(HANDLER_SECRET))
                durable = await rt.spawn(
                    Desk,
                    name="desk",
                    args=args,
                    mailbox=gr.MailboxConfig(kind="durable"),
                    retry=ONCE,
                )
                memory_desk = await rt.spawn(Desk, name="memory-desk", args=args, retry=ONCE)
                login = Login(user="ada", key=Secret(MESSAGE_SECRET))
                with pytest.raises(gr.InvalidMessage):  # a Secret is not written to a mailbox
                    await durable.tell(login)
                for ref, body in (
                    (memory_desk, login),
                    (durable, Plan(order="A-1")),
                    (durable, FetchEcho(url=server.url("/echo"))),
                    (durable, Probe(url=server.url("/echo"))),
                    (durable, Break()),
                    (durable, Leak()),
                ):
                    with pytest.raises(gr.HandlerError):
                        await ref.ask(body, timeout=10)
                await traces.flush()
                names, hits = _scan_folder(tmp_path)  # open: each database and its WAL
                assert {"traces.db-wal", "mail.db-wal"} <= set(names)
                await boxes.flush()  # the last failure's letter may still be queued
                letters = boxes.dead_letters.list()
            trace_ids = [t.trace_id for t in await traces.recent_traces(100)]
            spans = [s for t in trace_ids for s in await traces.spans(t)]
    finally:
        logger.remove(sink)
        logger.disable("greenroom")

    # The secrets were sent where they had to go, and came back.
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {CREDENTIAL}"] * 2
    assert model.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert len(letters) == 6  # the six failed messages

    _, closed_hits = _scan_folder(tmp_path)
    hits += closed_hits
    (out / "timeline.html").write_text(render_html(spans), encoding="utf-8")
    exported = memory.get_finished_spans()
    assert exported
    otel = "\n".join(s.to_json() for s in exported)
    hits += _hits("the OTel export", otel.encode())

    ids = [str(i) for i in range(1, len(letters) + 1)]
    commands = [
        ["dlq", "list", "--db", str(mail_db)],
        ["dlq", "list", "--json", "--db", str(mail_db)],
        *(["dlq", "show", i, "--db", str(mail_db)] for i in ids),
        *(["dlq", "show", i, "--json", "--db", str(mail_db)] for i in ids),
        ["trace", "ls", "--db", str(traces_db)],
        ["trace", "ls", "--json", "--db", str(traces_db)],
    ]
    for trace_id in trace_ids:
        shown = f"{trace_id:016x}"
        commands.append(["trace", "show", shown, "--attributes", "--db", str(traces_db)])
        commands.append(["trace", "show", shown, "--json", "--db", str(traces_db)])
    commands.append(
        [
            "trace",
            "html",
            f"{trace_ids[0]:016x}",
            "-o",
            str(out / "cli.html"),
            "--db",
            str(traces_db),
        ]
    )
    printed = _cli(commands)
    assert all(status == 0 for status, _ in printed.values()), printed
    for command, (_, text) in printed.items():
        hits += _hits(f"`greenroom {command}`", text.encode())

    names, out_hits = _scan_folder(out)
    assert {"greenroom.log", "timeline.html", "cli.html"} <= set(names)
    hits += out_hits
    assert hits == [], "\n".join(hits)
    # And the secrets did reach each artifact's doorstep, to be cut there.
    assert sum("[redacted]" in dl.error.message for dl in letters) == 6
    assert all("[redacted]" in (dl.error.traceback or "") for dl in letters)
    tool_results = [s.attributes.get("gen_ai.tool.call.result") for s in spans if s.kind == "tool"]
    assert {"status": 200, "content_type": "text/plain", "text": "you sent: [redacted]"} in (
        tool_results
    )
    assert "[redacted]" in otel
    assert "[redacted]" in printed[f"dlq show 2 --db {mail_db}"][1]
    log_text = log_path.read_text()
    assert "[redacted]" in log_text
    assert "lookup failed" in log_text


REDIS_SECRET = "pw-REDIS-0d4c7b19e2a6"


class Charge(gr.Message):
    order: str


class Billing(gr.Actor):
    def __init__(self, secret: Secret) -> None:
        self.secret = secret

    @gr.handler
    async def charge(self, msg: Charge) -> None:
        token = self.secret.reveal()
        raise RuntimeError(f"payment gateway rejected {token} for {msg.order}")


def _redis_bytes(url: str, prefix: str) -> bytes:
    """Every key under ``prefix`` as Redis serialises it (DUMP), and every stream entry raw."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        data = []
        for key in client.scan_iter(match=f"{prefix}*"):
            data.append(client.dump(key) or b"")
            if client.type(key) == b"stream":
                for _, fields in client.xrange(key):
                    data.extend(k + v for k, v in fields.items())
        return b"\n".join(data)
    finally:
        client.close()


async def test_no_planted_secret_reaches_a_redis_dead_letter() -> None:
    from greenroom.mailbox import RedisMailboxes
    from tests._redis_server import redis_prefix, redis_url

    url, prefix = redis_url(), redis_prefix()
    secret = Secret(REDIS_SECRET)
    async with (
        RedisMailboxes(url, prefix=prefix) as boxes,
        gr.Runtime(mailboxes={"redis": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        on_redis = await rt.spawn(
            Billing,
            name="billing",
            args=(secret,),
            mailbox=gr.MailboxConfig(kind="redis"),
            retry=ONCE,
        )
        in_memory = await rt.spawn(Billing, name="billing-memory", args=(secret,), retry=ONCE)
        for ref in (on_redis, in_memory):
            with pytest.raises(gr.HandlerError):
                await ref.ask(Charge(order="A-1"), timeout=10)
    stored = _redis_bytes(url, prefix)
    assert b"payment gateway rejected [redacted]" in stored
    source = ["--redis", url, "--prefix", prefix]
    listed = _cli([["dlq", "list", "--json", *source]])
    [(status, text)] = listed.values()
    assert status == 0
    ids = [json.loads(line)["id"] for line in text.splitlines()]
    assert len(ids) == 2
    printed = _cli(
        [["dlq", "list", *source]]
        + [["dlq", "show", i, *source] for i in ids]
        + [["dlq", "show", i, "--json", *source] for i in ids]
    )
    assert all(status == 0 for status, _ in printed.values()), printed
    shown = stored + text.encode() + "".join(t for _, t in printed.values()).encode()
    assert REDIS_SECRET.encode() not in shown
    assert REDIS_SECRET[3:].encode() not in shown


class Configure(gr.Message):
    service: str
    api_key: str


class Refuser(gr.Actor):
    @gr.handler
    async def configure(self, msg: Configure) -> None:
        raise ValueError(f"cannot configure {msg.service}")


async def test_dlq_output_cuts_a_body_field_named_as_a_secret(tmp_path: Path) -> None:
    """A body is stored as sent (a durable mailbox must deliver it again), but shown cut."""
    path = tmp_path / "mail.db"
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(Refuser, name="refuser", retry=ONCE)
        with pytest.raises(gr.HandlerError):
            await ref.ask(Configure(service="billing", api_key="plain-field-value"), timeout=10)
    printed = _cli(
        [["dlq", "show", "1", "--json", "--db", str(path)], ["dlq", "show", "1", "--db", str(path)]]
    )
    for status, text in printed.values():
        assert status == 0
        assert "plain-field-value" not in text
        assert '"api_key":"[redacted]"' in text
        assert '"service":"billing"' in text
