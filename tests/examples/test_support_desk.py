"""examples/support_desk.py: the main example runs offline and shows every promised behaviour."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greenroom as gr

ROOT = Path(gr.__file__).parent.parent


@pytest.fixture(scope="module")
def output() -> list[str]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "support_desk.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    return result.stdout.splitlines()


def _section(lines: list[str], number: int) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {number}."))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("== ")), len(lines))
    return lines[start:end]


def test_a_conversation_is_routed_to_one_worker(output: list[str]) -> None:
    answered = [re.search(r"answered by (\S+): every message of '(\S+)'", line) for line in output]
    workers: dict[str, set[str]] = {}
    for match in filter(None, answered):
        workers.setdefault(match.group(2), set()).add(match.group(1))
    assert set(workers) == {"ada-1", "grace-1"}
    assert all(len(w) == 1 for w in workers.values())  # each conversation kept its worker


def test_the_context_is_built_from_the_store_with_its_read_set(output: list[str]) -> None:
    first = _section(output, 1)
    assert any("built a context from the store" in line for line in first)
    assert any("read set [desk.profiles/ada@v1]" in line for line in first)
    assert any(re.search(r"tool fetch\(.*127\.0\.0\.1.*-> HTTP 200", line) for line in first)
    assert "   -> replied: Order 1042 is shipped." in first


def test_the_crashed_tool_call_was_retried_by_the_supervisor(output: list[str]) -> None:
    crash = _section(output, 2)
    assert '   tool carrier_eta({"order": 2001}) -> FAILED ToolFailed' in crash
    assert any(line.startswith("   supervisor: desk/support/") for line in crash)
    assert any("(attempt 2) built a context" in line for line in crash)
    assert "   -> replied: Order 2001 arrives on Friday." in crash
    assert "crashed tool call retried by the supervisor: True" in output


def test_the_approval_gate_held_the_refund_until_approved(output: list[str]) -> None:
    gate = _section(output, 3)
    parked = next(i for i, line in enumerate(gate) if "PARKED for approval" in line)
    waiting = gate.index("   the refund has run 0 times; the worker is free meanwhile:")
    approved = next(i for i, line in enumerate(gate) if "approves ticket" in line)
    ran = next(i for i, line in enumerate(gate) if '"refunded": "49.90 EUR"' in line)
    assert parked < waiting < approved < ran
    assert any("Order 2001 is packed." in line for line in gate[waiting:approved])
    assert "refund held at the approval gate until approved: True" in output
    assert "refund ran exactly once, after approval: True" in output


def test_the_stale_decision_was_redone_on_the_new_preference(output: list[str]) -> None:
    stale = _section(output, 4)
    changed = next(i for i, line in enumerate(stale) if "switches her language" in line)
    caught = stale.index("   STALE: desk.profiles/ada@v1 changed while deciding;")
    assert changed < caught
    assert any("read set [desk.profiles/ada@v2]" in line for line in stale[caught:])
    assert "   -> replied: Sí, enviamos a las Islas Canarias." in stale
    assert "stale decisions caught and redone: 1" in output


def test_the_trace_of_the_request_has_the_expected_shape(output: list[str]) -> None:
    tree = _section(output, 5)
    kinds = [line.strip().split()[1:3] for line in tree if line.strip().startswith("• ")]
    assert kinds[0] == ["internal", "ada:"]
    assert ["message", "Request"] in kinds
    assert ["message", "SetLanguage"] in kinds
    assert kinds.count(["llm", "rules"]) == 2
    assert kinds.count(["store", "check_fresh"]) == 2
    redo = kinds.index(["redo", "stale"])
    assert kinds[redo + 1 : redo + 3] == [["store", "read"], ["llm", "rules"]]
    indent = {line.index("•") for line in tree if "redo stale context" in line}
    nested = [line for line in tree if "• llm rules" in line and line.index("•") > min(indent)]
    assert len(nested) == 1  # the second decision is inside the redo span
    html = next(line for line in tree if line.startswith("HTML timeline: "))
    path = Path(html.removeprefix("HTML timeline: "))
    assert path.is_file()
    assert "<html" in path.read_text().lower()
