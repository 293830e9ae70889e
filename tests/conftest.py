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
