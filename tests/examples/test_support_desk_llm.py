"""examples/support_desk_llm.py against the scripted OpenAI-compatible server, offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

import greenroom as gr
from greenroom.testing import ScriptedModelServer, ScriptedToolCall

ROOT = Path(gr.__file__).parent.parent

pytestmark = pytest.mark.anyio


def _script(server: ScriptedModelServer) -> None:
    server.call_tools(ScriptedToolCall(name="lookup_order", arguments={"order": 1042}))
    server.reply("Order 1042 is shipped.")
    server.call_tools(ScriptedToolCall(name="refund_order", arguments={"order": 1042}))
    server.reply("Order 1042 is refunded.")  # after the approval
    server.call_tools(ScriptedToolCall(name="carrier_eta", arguments={"order": 2001}))
    server.call_tools(ScriptedToolCall(name="carrier_eta", arguments={"order": 2001}))  # retry
    server.reply("Order 2001 arrives on Friday.")
    server.reply("Yes, we ship to the Canary Islands.")  # made on a stale profile
    server.reply("Sí, enviamos a las Islas Canarias.")  # made again


async def test_the_llm_desk_runs_the_same_system_around_a_model() -> None:
    async with ScriptedModelServer() as server:
        _script(server)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_MODEL": "scripted",
            "OPENAI_API_KEY": "sk-test",
        }
        with anyio.fail_after(30):
            result = await anyio.run_process(
                [sys.executable, str(ROOT / "examples" / "support_desk_llm.py")],
                env=env,
                check=False,
            )
        assert result.returncode == 0, result.stderr.decode()
        assert server.pending == 0
        assert server.unscripted == 0
        last = server.requests[-1].json()
    lines = result.stdout.decode().splitlines()
    assert any("-> replied: Order 1042 is shipped." in line for line in lines)
    assert any("-> awaiting_approval:" in line for line in lines)
    assert any("-> replied: Order 1042 is refunded." in line for line in lines)
    assert any("FAILED ToolFailed" in line for line in lines)
    assert any("-> replied: Sí, enviamos a las Islas Canarias." in line for line in lines)
    assert "stale decisions caught and redone: 1" in lines
    assert "refund ran after approval: 1" in lines
    assert isinstance(last, dict)
    assert '"language":"es"' in str(last["messages"]).replace(" ", "")  # the redo saw the change


async def test_without_a_model_url_the_llm_desk_says_how_to_run_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    result = await anyio.run_process(
        [sys.executable, str(ROOT / "examples" / "support_desk_llm.py")],
        env={**env, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0
    assert b"set OPENAI_BASE_URL" in result.stdout
