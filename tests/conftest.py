"""Shared fixtures: every async test runs on asyncio through anyio's pytest plugin."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def need_server(reason: str) -> None:
    """Skip a test whose server is missing, or fail it when CI demands servers."""
    if os.environ.get("GREENROOM_REQUIRE_SERVERS"):
        pytest.fail(f"required server missing: {reason}")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per fuzzed decode boundary: cases tried, accepted, typed, escaped."""
    from tests._fuzz import counts

    if not counts:
        return
    terminalreporter.section("fuzzed boundaries")
    for boundary, figures in sorted(counts.items()):
        terminalreporter.write_line(f"fuzz {boundary}: {figures}")
