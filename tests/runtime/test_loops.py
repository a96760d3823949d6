"""Choosing the event loop where Aria owns it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from aria_actors import ConfigError, NodeConfig, NodeThread, RuntimeConfig
from aria_actors._runtime.loops import loop_factory, loop_name

from ..conftest import require_uvloop


def run_on(kind: str) -> str:
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:  # type: ignore[arg-type]

        async def which() -> str:
            return loop_name(asyncio.get_running_loop())

        return runner.run(which())


def test_each_kind_builds_its_loop() -> None:
    require_uvloop()
    assert run_on("asyncio") == "asyncio"
    assert run_on("uvloop") == "uvloop"
    assert run_on("auto") == "uvloop"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert run_on("auto") == "asyncio"
    with pytest.raises(ConfigError, match=r"runtime\.event_loop: 'uvloop' is not installed"):
        loop_factory("uvloop")
    with pytest.raises(ConfigError, match=r"runtime\.event_loop"):
        loop_factory("tokio")  # type: ignore[arg-type]


def test_the_config_names_a_bad_loop() -> None:
    with pytest.raises(ValueError, match=r"runtime\.event_loop"):
        RuntimeConfig(event_loop="tokio")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_node_thread_runs_on_the_configured_loop(kind: str) -> None:
    if kind == "uvloop":
        require_uvloop()
    config = NodeConfig(runtime=RuntimeConfig(event_loop=kind))  # type: ignore[arg-type]
    with NodeThread(name="loops", config=config) as embedded:

        async def which() -> str:
            return loop_name(asyncio.get_running_loop())

        assert embedded.run(which) == kind
