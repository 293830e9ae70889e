"""examples/embed_web_server.py runs offline and shows a web handler asking an actor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import greenroom as gr

ROOT = Path(gr.__file__).parent.parent


def test_embedding_example_serves_requests_through_an_actor_without_races() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed_web_server.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "GET /count/ada -> 200 2" in lines
    assert "GET /count/grace -> 200 1" in lines
    assert "20 concurrent requests counted 1..20, no race: True" in lines
    assert "GET /nowhere -> 404" in lines
    assert lines[-1] == "server and runtime stopped"
