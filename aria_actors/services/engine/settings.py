"""aria_engine's settings: ``[services.aria_engine]`` in the node configuration.

::

    [services.aria_engine]
    pool = "process"                   # "process" | "thread": where plans are searched
    pool_size = 2                      # plans searched at once
    max_waiting = 64                   # plan requests waiting for the pool; more are refused
    strategy = "iterative_dfs_backtracking"   # the default strategy (planner.STRATEGIES)
    max_expansions = 1000000           # the default and largest expansion budget of a plan
    timeout = 30.0                     # the default and longest search time of a plan (s)
    modules = []                       # import paths of modules defining more domains
                                       #   (their DOMAINS, else their module-level Domains)
    gtpyhop_modules = []               # unmodified GTPyhop domain modules (dotted names
                                       #   or paths), run through compat.load_gtpyhop_module
    act_max_replans = 5                # a character replans at most this often per request
    span_log = "spans/engine.jsonl"    # where the characters' spans are exported as JSON
                                       #   lines (relative: under the node's state
                                       #   directory; "" turns the export off)
    span_log_max_bytes = 67108864      # the file is rotated to <name>.1 past this size

Why a process pool by default: planning is pure-Python and CPU-bound, so threads
share one GIL; worker processes search in parallel and leave the node's event loop
its whole core. The cost: each worker imports the domains itself (so they are named
by import path, never built at run time), requests and answers are pickled, and
cancellation goes through a shared flag per worker slot. ``pool = "thread"`` avoids
the process start-up (for tests, small hosts, or domains that do not pickle) and
still keeps searches off the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

from ..._runtime.errors import ConfigError
from ..._runtime.tomlfile import describe
from .planner import STRATEGIES

SERVICE: Final = "aria_engine"

PoolKind = Literal["process", "thread"]


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of ``[services.aria_engine]``; see the module documentation."""

    pool: PoolKind = "process"
    pool_size: int = 2
    max_waiting: int = 64
    strategy: str = "iterative_dfs_backtracking"
    max_expansions: int = 1_000_000
    timeout: float = 30.0
    modules: list[str] = msgspec.field(default_factory=list)
    gtpyhop_modules: list[str] = msgspec.field(default_factory=list)
    act_max_replans: int = 5
    span_log: str = "spans/engine.jsonl"
    span_log_max_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.pool_size <= 256:
            raise ValueError("pool_size must be 1..256")
        if self.max_waiting < 0:
            raise ValueError("max_waiting must be 0 or more")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.max_expansions < 1:
            raise ValueError("max_expansions must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.act_max_replans < 0:
            raise ValueError("act_max_replans must be 0 or more")
        if self.span_log_max_bytes < 4096:
            raise ValueError("span_log_max_bytes must be at least 4096")


def load_settings(raw: Mapping[str, Any]) -> EngineSettings:
    """Decode ``[services.aria_engine]``.

    Raises:
        ConfigError: naming the key (``services.aria_engine.pool_size: ...``).
    """
    try:
        return msgspec.convert(dict(raw), EngineSettings)
    except msgspec.ValidationError as exc:
        described = describe(exc).removeprefix("(top level)")
        raise ConfigError(
            f"services.{SERVICE}{'' if described.startswith(':') else '.'}{described}"
        ) from exc
