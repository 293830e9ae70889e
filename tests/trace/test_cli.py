"""``trace ls``, ``show`` and ``html`` end to end, through a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from greenroom.trace import SqliteTraceStore

from ._spans import request_spans

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenroom.trace._cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "traces.db"
    spans = request_spans()

    async def write() -> None:
        async with SqliteTraceStore(path) as store:
            await store.write(spans)

    anyio.run(write)
    return path, spans[0].trace_id


def test_ls_lists_the_trace_with_its_root_status_and_tokens(db: tuple[Path, int]) -> None:
    path, trace_id = db
    done = _cli("ls", "--db", str(path))
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["TRACE", "STARTED", "STATUS"]
    assert row.startswith(f"{trace_id:016x}")
    assert "ok/1✗" in row
    assert " 150 " in row
    assert row.endswith("Ask @coordinator")


def test_show_prints_the_tree_for_an_id_prefix(db: tuple[Path, int]) -> None:
    path, trace_id = db
    done = _cli("trace", "show", f"{trace_id:016x}"[:10], "--db", str(path))
    assert done.returncode == 0, done.stderr
    assert "✗ message Store @writer" in done.stdout
    assert "ERROR ValueError: disk said no" in done.stdout


def test_html_writes_a_self_contained_page(db: tuple[Path, int], tmp_path: Path) -> None:
    path, trace_id = db
    out = tmp_path / "t.html"
    done = _cli("html", f"{trace_id:016x}", "-o", str(out), "--db", str(path))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count('class="bar') == 5
    assert "http://" not in page
    assert "https://" not in page
    assert "src=" not in page


def test_errors_have_their_exit_status(db: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = db
    missing = _cli("ls", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2
    assert "no trace database" in missing.stderr
    unknown = _cli("show", "7fffffffffffffff", "--db", str(path))
    assert unknown.returncode == 1
    assert "no trace" in unknown.stderr
    bad = _cli("show", "xyz", "--db", str(path))
    assert bad.returncode == 2
    assert "hex" in bad.stderr
