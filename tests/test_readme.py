"""README.md: every python block runs, and prints what the README says it prints.

The blocks are read from their fences. An HTML comment on the line before a
fence marks the block:

- ``<!-- fragment -->``: a python block that is not a whole program; it is
  only compiled.
- ``<!-- needs: redis -->``: a python block run against the test session's
  redis-server (``tests/_redis_server.py``), whose URL replaces
  ``redis://127.0.0.1:6379/0`` in the code; skipped when there is no
  ``redis-server`` (failed under ``GREENROOM_REQUIRE_SERVERS``).
- ``<!-- output -->``: a text block holding what the python block before it
  prints, all of it. A line ``...`` stands for any lines (none included),
  ``...`` inside a line for any text.
- ``<!-- output: examples/x.py -->``: the same for a script of the repository.

Every other python block is a whole program: it runs in a subprocess of
this interpreter, from the repository root, under a timeout, and must exit
0. Programs run with warnings as errors and may open connections only to
loopback: the runner refuses any other address before it is resolved.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import greenroom as gr

ROOT = Path(gr.__file__).parent.parent
README = ROOT / "README.md"
TIMEOUT = 60.0  # seconds per program; each takes well under one
REDIS_PLACEHOLDER = "redis://127.0.0.1:6379/0"

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(.*?)\s*-->$")

# Runs the program named by argv[1] as __main__, with connections limited to loopback.
_RUNNER = """
import runpy, socket, sys

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _check(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host is not None and host not in _LOOPBACK:
        raise ConnectionRefusedError(f"README programs may only reach loopback, not {host!r}")


def _address(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])


_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
)


def connect(self, address):
    _address(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _address(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
    connect, connect_ex, getaddrinfo
)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class Block:
    """One fenced block of the README."""

    line: int  # of the opening fence, from 1
    language: str
    mark: str | None  # the HTML comment before the fence, without <!-- -->
    code: str
    heading: str  # the nearest heading above it
    output: list[str] | None = None  # for a python block: what it prints


def parse(text: str) -> list[Block]:
    """The fenced blocks of ``text``, each with the mark and the heading before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = "top"
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if line.strip():
                previous = line.strip()
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = _MARK.match(previous)
        blocks.append(
            Block(
                line=i + 1,
                language=fence.group(1),
                mark=mark.group(1) if mark else None,
                code="\n".join(lines[i + 1 : end]) + "\n",
                heading=heading,
            )
        )
        previous = ""
        i = end + 1
    return blocks


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def attach_outputs(blocks: list[Block]) -> dict[str, list[Block]]:
    """Give each python block its output block; return the output blocks of scripts by path.

    Raises:
        ValueError: an ``<!-- output -->`` block that does not follow a python block.
    """
    scripts: dict[str, list[Block]] = {}
    for index, block in enumerate(blocks):
        if block.mark is None or not block.mark.startswith("output"):
            continue
        script = block.mark.partition(":")[2].strip()
        if script:
            scripts.setdefault(script, []).append(block)
            continue
        before = blocks[index - 1] if index else None
        if before is None or before.language != "python":
            raise ValueError(f"README.md:{block.line}: an output block must follow a python block")
        before.output = block.code.splitlines()
    return scripts


BLOCKS = parse(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.language == "python"]
SCRIPTS = attach_outputs(BLOCKS)


def _pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.rstrip().split("...")) + r"\n")
    return re.compile("".join(parts))


def assert_prints(expected: list[str], stdout: str, where: str) -> None:
    printed = "".join(line.rstrip() + "\n" for line in stdout.splitlines())
    if _pattern(expected).fullmatch(printed) is None:
        shown = "\n".join(expected)
        pytest.fail(f"{where} prints\n{printed}\nbut the README shows\n{shown}", pytrace=False)


def run(path: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the program at ``path`` as the README's reader would, limited to loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUNNER, str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _param(block: Block) -> object:
    return pytest.param(block, id=f"{_slug(block.heading)}-L{block.line}")


def test_every_python_block_is_a_program_or_marked() -> None:
    marks = {None, "fragment", "needs: redis"}
    for block in PYTHON:
        where = f"README.md:{block.line}"
        assert block.mark in marks, f"{where}: unknown mark <!-- {block.mark} -->"
        compile(block.code, where, "exec")  # every block parses, fragments included
        if block.mark is None:
            assert REDIS_PLACEHOLDER not in block.code, f"{where}: mark it <!-- needs: redis -->"
    assert sum(b.mark is None for b in PYTHON) >= 10
    assert all(b.output is not None for b in PYTHON if b.mark != "fragment")


@pytest.mark.parametrize("block", [_param(b) for b in PYTHON if b.mark != "fragment"])
def test_the_readme_program_runs_and_prints_what_the_readme_shows(
    block: Block, tmp_path: Path
) -> None:
    code = block.code
    if block.mark == "needs: redis":
        from tests._redis_server import redis_url  # starts the session's server, or skips

        code = code.replace(REDIS_PLACEHOLDER, redis_url())
    program = tmp_path / f"readme_L{block.line}.py"
    program.write_text(code, encoding="utf-8")
    result = run(program)
    where = f"the program at README.md:{block.line}"
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    assert result.stderr == "", f"{where} wrote to stderr:\n{result.stderr}"
    if block.output is not None:
        assert_prints(block.output, result.stdout, where)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_quick_start_prints_what_the_readme_says(script: str) -> None:
    result = run(ROOT / script)
    assert result.returncode == 0, f"{script} failed:\n{result.stderr}"
    for block in SCRIPTS[script]:
        assert_prints(block.code.splitlines(), result.stdout, script)


def test_the_quick_start_commands_are_the_two_of_the_readme() -> None:
    quick = next(b for b in BLOCKS if b.heading == "Quick start" and b.language == "sh")
    commands = [line.split("#")[0].strip() for line in quick.code.splitlines()]
    assert commands == ["uv run examples/support_desk.py", "uv run pytest"]
    assert set(SCRIPTS) == {"examples/support_desk.py"}


def test_the_runner_refuses_connections_beyond_loopback(tmp_path: Path) -> None:
    program = tmp_path / "reach_out.py"
    program.write_text(
        "import socket\n"
        "tries = [\n"
        "    lambda: socket.create_connection(('example.com', 80), timeout=1),\n"
        "    lambda: socket.socket().connect(('192.0.2.1', 80)),\n"
        "    lambda: socket.socket().connect_ex(('192.0.2.2', 80)),\n"
        "]\n"
        "for attempt in tries:\n"
        "    try:\n"
        "        attempt()\n"
        "    except ConnectionRefusedError as exc:\n"
        "        print(exc)\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=1).close()\n"
        "server.close()\n"
        "print('loopback: ok')\n",
        encoding="utf-8",
    )
    result = run(program)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "README programs may only reach loopback, not 'example.com'",
        "README programs may only reach loopback, not '192.0.2.1'",
        "README programs may only reach loopback, not '192.0.2.2'",
        "loopback: ok",
    ]
