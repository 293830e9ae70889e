"""examples/durable_agent.py: killed with SIGKILL twice and restarted, it loses no note."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import greenroom as gr

ROOT = Path(gr.__file__).parent.parent


def test_durable_agent_survives_kill_9_and_writes_every_note_once() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "durable_agent.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.count("-- agent killed with SIGKILL after note 40 was sent") == 1
    assert "-- agent killed with SIGKILL after note 80 was sent" in lines
    assert "-- agent exited with 0 after note 120 was sent" in lines
    assert "sent 120 notes; the notebook holds 120 distinct notes" in lines
    assert lines[-1] == "every note written exactly once: True"
