"""Shared fixtures: a node per test, captured logs, the asyncio backend.

Every ``async def`` test runs under anyio's pytest plugin (``anyio_mode = "auto"``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from aria_actors import Node, NodeConfig, RuntimeConfig
from aria_actors.testing import VirtualClock


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Every async test runs on the standard loop and on uvloop (both are supported).

    uvloop comes with the dev extra; without it the uvloop runs are skipped, except
    in CI (``CI=true``), where a missing component fails the run.
    """
    if request.param == "asyncio":
        return "asyncio"
    require_uvloop()
    return ("asyncio", {"use_uvloop": True})


def require_uvloop() -> None:
    """Skip without uvloop; in CI (``CI=true``) fail instead, never skip silently."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("uvloop is not installed (pip install -e '.[dev]')")
        pytest.skip("uvloop is not installed")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event emitted during the test, as dicts."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(processors=[capture], cache_logger_on_first_use=False)
    try:
        yield capture.entries
    finally:
        structlog.configure(**old)


@pytest.fixture
async def node(clock: VirtualClock, logs: list[dict[str, Any]]) -> AsyncIterator[Node]:
    """A running node with a virtual clock; stopped after the test."""
    config = NodeConfig(runtime=RuntimeConfig(mailbox_size=64, shutdown=2.0))
    async with Node(name="test", config=config, clock=clock) as running:
        yield running
