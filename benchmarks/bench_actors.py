"""Actors and service files for the node benchmark (importable as ``bench_actors``)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from aria_actors import LAYER_ORDER, Actor, handles

REQUIRES: dict[str, tuple[str, ...]] = {
    "aria_security": (),
    "aria_data": ("aria_security",),
    "aria_auth": ("aria_security", "aria_data"),
    "aria_storage": ("aria_security", "aria_auth"),
    "aria_queue": ("aria_data", "aria_security"),
    "aria_shape": ("aria_security", "aria_data", "aria_storage", "aria_queue"),
    "aria_engine": ("aria_security", "aria_data", "aria_queue"),
    "aria_interpret": ("aria_security", "aria_data", "aria_storage", "aria_queue"),
    "aria_workflow": ("aria_security", "aria_data", "aria_queue"),
    "aria_interface": (
        "aria_security",
        "aria_auth",
        "aria_data",
        "aria_storage",
        "aria_queue",
        "aria_workflow",
    ),
    "aria_coordinate": ("aria_security", "aria_auth"),
    "aria_monitor": ("aria_security",),
    "aria_debugger": ("aria_security", "aria_auth"),
    "aria_tune": ("aria_security", "aria_data", "aria_monitor", "aria_queue"),
}
"""The architecture's dependency graph, for a tree shaped like the real one."""


class Ping(msgspec.Struct, frozen=True, tag=True):
    pass


class Worker(Actor):
    """A worker with a little state, standing in for a service's actors."""

    async def init(self, index: int = 0) -> None:
        self.index = index
        self.seen = 0

    @handles(Ping)
    def ping(self, message: Ping) -> int:
        self.seen += 1
        return self.index


def write_services(directory: Path, workers: int) -> None:
    """Fourteen service files with the real ``requires``, each a tree of ``workers``
    workers under a nested supervisor, plus a dynamic pool."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in LAYER_ORDER:
        requires = ", ".join(f'"{r}"' for r in REQUIRES[name])
        lines = [
            "[service]",
            f'name = "{name}"',
            f"requires = [{requires}]",
            "",
            "[supervisor]",
            'strategy = "rest_for_one"',
            "",
            "[[children]]",
            'id = "workers"',
            "[children.supervisor]",
            'strategy = "one_for_one"',
        ]
        for index in range(workers):
            lines += [
                "[[children.supervisor.children]]",
                f'id = "w{index}"',
                'actor = "bench_actors:Worker"',
                f'name = "{name}.w{index}"',
                "[children.supervisor.children.args]",
                f"index = {index}",
            ]
        lines += ["", "[[children]]", 'id = "pool"', "[children.dynamic_supervisor]"]
        lines += ["max_children = 64", ""]
        (directory / f"{name}.toml").write_text("\n".join(lines), encoding="utf-8")
