"""Helpers of the aria_security service tests: nodes, boot, polling, a watcher actor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Actor, Node, NodeConfig, RuntimeConfig, handles, load_services
from aria_actors.services.security.messages import SecretChanged

SUPERVISORS = Path(__file__).resolve().parents[3] / "supervisors"
SECRETS_NAME = "aria_security.secrets"
ROTATION_NAME = "aria_security.rotation"

ONE_LOOP = pytest.mark.parametrize("anyio_backend", ["asyncio"])
"""For the slow real-server tests whose waiting happens on the server and in hvac's
threads, where the event loop makes no difference: they run on asyncio only (the
conftest runs every other async test on asyncio and on uvloop)."""


def security_node(state_dir: Path, settings: dict[str, Any] | None = None, name: str = "t") -> Node:
    """A node whose ``[services.aria_security]`` is ``settings``, keeping files in
    ``state_dir`` (not started: ``async with``)."""
    config = NodeConfig(
        runtime=RuntimeConfig(shutdown=5.0),
        services={"aria_security": settings} if settings is not None else {},
    )
    return Node(name=name, config=config, state_dir=state_dir)


async def boot_security(node: Node) -> list[str]:
    """Boot aria_security from the repository's supervisors/ (and nothing else)."""
    return await node.boot(load_services(SUPERVISORS), only=["aria_security"])


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "the condition",
) -> None:
    """Poll ``condition`` (sync or async) until it is true; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} was still false after {timeout} s")
        await asyncio.sleep(interval)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The captured log entries whose event is ``name``."""
    return [entry for entry in logs if entry.get("event") == name]


def backend_up(node: Node) -> float | None:
    """The ``aria_security_backend_up`` gauge (None before the secrets actor made it)."""
    return node.metrics.get_sample_value("aria_security_backend_up")


class Watcher(Actor):
    """Collects every ``SecretChanged`` it is sent into ``sink`` (a list it is given)."""

    async def init(self, sink: list[SecretChanged]) -> None:
        self.sink = sink

    @handles(SecretChanged)
    def changed(self, message: SecretChanged) -> None:
        self.sink.append(message)
