"""Helpers of the aria_storage service tests: nodes booted from supervisors/, files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aria_actors import Node, NodeConfig, RuntimeConfig, load_services
from aria_actors.services.storage.index import Index
from aria_actors.services.storage.make import make
from aria_actors.services.storage.settings import StorageSettings
from tests.servers.fixtures import PgDatabase

SUPERVISORS = Path(__file__).resolve().parents[3] / "supervisors"
SERVICES = load_services(SUPERVISORS)

CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_cost": 1024,
    "argon2_parallelism": 1,
}
SMALL_CHUNKS: dict[str, Any] = {"min_chunk": 2048, "avg_chunk": 8192, "max_chunk": 32768}
"""Small chunks, so that files of a few hundred KiB have dozens of them."""


def storage_settings(**more: Any) -> dict[str, Any]:
    """``[services.aria_storage]`` for tests: small chunks, no timers, plus ``more``."""
    return SMALL_CHUNKS | {"integrity_interval": 0, "gc_interval": 0} | more


def postgres_data(pg: PgDatabase) -> dict[str, Any]:
    """``[services.aria_data]`` on the test's PostgreSQL database."""
    main = {"backend": "postgres", "dsn": pg.tcp_dsn, "acquire_timeout": 5.0}
    return {"databases": {"main": main}}


@contextlib.asynccontextmanager
async def storage_node(
    state: Path,
    storage: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    name: str = "storage-test",
    only: str = "aria_storage",
) -> AsyncIterator[Node]:
    """A node running aria_storage (or the service ``only``) and what it requires
    (booted), stopped after."""
    services: dict[str, Any] = {
        "aria_auth": CHEAP_ARGON2,
        "aria_storage": storage if storage is not None else storage_settings(),
    }
    if data is not None:
        services["aria_data"] = data
    config = NodeConfig(runtime=RuntimeConfig(shutdown=5.0), services=services)
    async with asyncio.timeout(120), Node(name=name, config=config, state_dir=state) as node:
        await node.boot(SERVICES, only=[only])
        yield node


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def index_of(path: Path, **settings: Any) -> Index:
    """The index ``path`` gets with the tests' chunk sizes (nothing stored)."""
    params = StorageSettings(**(SMALL_CHUNKS | settings)).chunker
    index, _ = make(path, None, params=params)
    return index


def store_dir(state: Path, store: str = "default") -> Path:
    return state / "storage" / "stores" / store


def chunk_path(state: Path, chunk_id: str, store: str = "default") -> Path:
    return store_dir(state, store) / chunk_id[:4] / f"{chunk_id}.cacnk"


def stored_ids(state: Path, store: str = "default") -> set[str]:
    """The chunk ids (hex) in a local store, from its files."""
    root = store_dir(state, store)
    return {p.name.removesuffix(".cacnk") for p in root.glob("*/*.cacnk")}


def index_files(state: Path) -> set[str]:
    """The names of the catalogue's index files (``.caibx`` and ``.caidx``)."""
    root = state / "storage" / "indexes"
    return {p.name for p in root.glob("*/*.caibx")} | {p.name for p in root.glob("*/*.caidx")}


def metric(node: Node, name: str, **labels: str) -> float:
    value = node.metrics.get_sample_value(name, labels)
    return float(value or 0.0)


def corrupt(path: Path) -> None:
    """Overwrite a file with garbage of the same length."""
    size = path.stat().st_size
    path.write_bytes(os.urandom(size))
