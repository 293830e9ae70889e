"""The pytest plugin of greenroom: a ``runtime`` fixture and a ``probe`` fixture.

Enabled by the ``pytest11`` entry point when greenroom is installed. The
fixtures are async: use them from ``@pytest.mark.anyio`` tests (anyio's own
plugin) with an ``anyio_backend`` fixture returning ``"asyncio"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from greenroom.actors import Runtime
from greenroom.testing._probe import TestProbe

__all__ = ["probe", "runtime"]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """A started :class:`Runtime`, stopped (every actor, every task) after the test."""
    async with Runtime() as rt:
        yield rt


@pytest.fixture
async def probe(runtime: Runtime) -> TestProbe:
    """A :class:`TestProbe` in the ``runtime`` fixture's runtime."""
    return await TestProbe.spawn(runtime, name="probe")
