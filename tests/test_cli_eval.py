"""``greenroom eval`` end to end: a recorded trace, deciders in a module, the console script."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import greenroom as gr
from greenroom.decide import CallTool, ChatMessage, Context, Decider, Reply
from greenroom.trace import SqliteTraceStore, format_id

GREENROOM = Path(sys.executable).parent / "greenroom"

# The decider that recorded the trace, one that decides step 2 otherwise, and a broken one.
DECIDERS = textwrap.dedent(
    """
    from greenroom.decide import (
        CallTool, Reply, Rule, RulesDecider, last_tool_result, tool_returned, user_says,
    )

    def _double(ctx):
        return CallTool(name="double", arguments={"n": int(last_tool_result(ctx))})

    def _result(ctx):
        return Reply(text=f"result {last_tool_result(ctx)}")

    same = RulesDecider([
        Rule(user_says("add"), CallTool(name="add", arguments={"a": 2, "b": 3})),
        Rule(tool_returned("add"), _double),
        Rule(tool_returned("double"), _result),
    ], name="v1")

    def make_changed():
        return RulesDecider([
            Rule(user_says("add"), CallTool(name="add", arguments={"a": 2, "b": 3}, id="other")),
            Rule(tool_returned("add"), lambda ctx: Reply(text="five, I think")),
            Rule(tool_returned("double"), _result),
        ], name="v2")

    not_a_decider = 42
    """
)


class Ask(gr.Message):
    text: str


class Agent(gr.Actor):
    """Three decision steps; the tools are computed in place (eval never runs tools)."""

    def __init__(self, decider: Decider) -> None:
        self.decider = decider

    @gr.handler
    async def ask(self, msg: Ask) -> str:
        context = Context(messages=(ChatMessage.user(msg.text),))
        for _ in range(5):
            result = await self.decider.decide(context)
            if isinstance(result.final, Reply):
                return result.final.text
            for call in result.tool_calls:
                args = call.arguments
                out = args["a"] + args["b"] if call.name == "add" else 2 * args["n"]  # type: ignore[operator]
                context = context.add(ChatMessage.assistant(calls=[call]))
                context = context.add(ChatMessage.tool_result(call, str(out)))
        return "gave up"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_deciders", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def recorded(tmp_path: Path) -> tuple[Path, str]:
    """Deciders on PYTHONPATH in tmp_path, and one trace recorded with ``same``."""
    (tmp_path / "eval_deciders.py").write_text(DECIDERS)
    deciders = load_module(tmp_path / "eval_deciders.py")
    db = tmp_path / "traces.db"
    async with SqliteTraceStore(db) as store:
        async with gr.Runtime(tracer=store.tracer) as rt:
            agent = await rt.spawn(Agent, name="agent", args=(deciders.same,))
            assert await agent.ask(Ask(text="add 2 and 3"), timeout=10) == "result 10"
        await store.flush()
        [summary] = await store.recent_traces(5)
    return db, format_id(summary.trace_id)


def greenroom(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [str(GREENROOM), *args], capture_output=True, text=True, timeout=60, env=env, cwd="/"
    )


pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_eval_of_the_recording_decider_matches_every_step(
    recorded: tuple[Path, str],
) -> None:
    db, _ = recorded

    done = greenroom(db.parent, "eval", "--db", str(db), "--decider", "eval_deciders:same")

    assert done.returncode == 0, done.stderr
    assert "'v1' on 3 decision steps of 1 traces" in done.stdout
    assert "3 of 3 decisions match (100%); 0 differ; 0 skipped" in done.stdout
    assert "RECORDED" not in done.stdout  # no table when nothing differs
    assert done.stderr == ""  # no progress bar off a terminal unless asked


async def test_eval_of_a_changed_decider_reports_the_differing_step_and_fails_on_request(
    recorded: tuple[Path, str],
) -> None:
    db, trace = recorded
    args = ("eval", "--db", str(db), "--decider", "eval_deciders:make_changed", "--trace", trace)

    text = greenroom(db.parent, *args, "--progress")
    as_json = greenroom(db.parent, *args, "--json", "--fail-on-diff")

    assert text.returncode == 0, text.stderr
    assert "2 of 3 decisions match (66%); 1 differ; 0 skipped" in text.stdout
    [row] = [line for line in text.stdout.splitlines() if line.startswith(trace)]
    assert row.split()[1:3] == ["2", "agent"]
    assert 'double({"n":5})' in row
    assert 'Reply "five, I think"' in row
    assert text.stderr.endswith("] 3/3 steps\n")
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["matched"], report["differ"], report["skipped"]) == (2, 1, 0)
    [differs] = [o for o in report["outcomes"] if o["status"] != "match"]
    assert (differs["trace_id"], differs["step"], differs["status"]) == (trace, 2, "differ")
    assert differs["recorded"] == [
        {"type": "CallTool", "name": "double", "arguments": {"n": 5}, "id": "v1-1"}
    ]
    assert differs["new"] == [{"type": "Reply", "text": "five, I think", "value": None}]
    # step 1 decided the same call with another id: ids are not compared
    assert report["outcomes"][0]["status"] == "match"


async def test_eval_refuses_a_path_that_names_no_decider_with_exit_status_2(
    recorded: tuple[Path, str],
) -> None:
    db, _ = recorded

    wrong = greenroom(
        db.parent, "eval", "--db", str(db), "--decider", "eval_deciders:not_a_decider"
    )
    missing = greenroom(db.parent, "eval", "--db", str(db), "--decider", "eval_deciders:nope")
    unknown = greenroom(
        db.parent, "eval", "--db", str(db), "--decider", "eval_deciders:same", "--trace", "f" * 16
    )

    assert wrong.returncode == missing.returncode == unknown.returncode == 2
    assert "not a Decider or a factory" in wrong.stderr
    assert "cannot load the decider 'eval_deciders:nope'" in missing.stderr
    assert "no trace" in unknown.stderr


def test_same_decisions_ignores_call_ids_and_the_order_of_parallel_calls() -> None:
    from greenroom.testing._eval import same_decisions
    from greenroom.testing._recorded import plain

    a, b = CallTool(name="a", arguments={"x": 1}, id="1"), CallTool(name="b", id="2")
    recorded = plain([a, b])
    assert isinstance(recorded, list)

    assert same_decisions(
        recorded, [plain(CallTool(name="b")), plain(CallTool(name="a", arguments={"x": 1}))]
    )
    assert not same_decisions(recorded, [plain(CallTool(name="a", arguments={"x": 2})), plain(b)])
    assert same_decisions([plain(Reply(text="hi"))], [plain(Reply(text="hi", value={"k": 1}))])
    assert not same_decisions([plain(Reply(text="hi"))], [plain(Reply(text="hi!"))])
