"""Foundation benchmark: secret reads per second, and query round trips through the pool.

Run it with ``make bench-foundation`` (``.venv/bin/python benchmarks/bench_foundation.py``).
It starts its own real servers, as the tests do (tests/servers/): an OpenBao dev
server on a loopback port and an ephemeral PostgreSQL cluster in a temp dir.

- **secret reads/s**: ``Secrets(node).get(path)`` through aria_security (the actor,
  the audit log, the backend), and the backend's ``store.get`` alone, for the
  embedded store and OpenBao; one caller, and 16 concurrent callers.
- **query round trips/s**: ``SELECT $1::int`` through aria_data's
  ``PostgresDatabase.fetchval`` against ``asyncpg`` used directly (``pool.fetchval``
  on a pool of the same size), one caller and 16 concurrent; the ratio is the
  pool's overhead. ``PostgresDatabase`` always applies a statement deadline
  (``command_timeout``) and an acquire deadline; asyncpg with ``command_timeout``
  is shown too, so the cost of the deadlines is visible apart from the rest.
  SQLite through ``SqliteDatabase`` beside it.

Each figure is the best of ``--repeats`` runs; results go to
``benchmarks/results/foundation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import structlog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from aria_actors import Node, NodeConfig, RuntimeConfig, load_services  # noqa: E402
from aria_actors.services.data.postgres import PostgresDatabase  # noqa: E402
from aria_actors.services.data.sqlite import SqliteDatabase  # noqa: E402
from aria_actors.services.security.client import Secrets  # noqa: E402
from tests.servers.openbao import OpenBaoServer  # noqa: E402
from tests.servers.postgres import PostgresCluster  # noqa: E402

CONCURRENCY = 16


async def rate(n: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Calls per second of ``call``, ``n`` in all, ``concurrency`` at a time."""
    per_task = n // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - started)


async def best(repeats: int, n: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> float:
    await rate(max(concurrency, n // 10), concurrency, call)  # warm-up
    return max([await rate(n, concurrency, call) for _ in range(repeats)])


async def secrets_rates(
    backend: str, settings: dict[str, Any], n: int, repeats: int
) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="aria-bench-sec-"))
    config = NodeConfig(
        runtime=RuntimeConfig(loop_lag_interval=0), services={"aria_security": settings}
    )
    results: dict[str, float] = {}
    async with Node(name="bench", config=config, state_dir=state) as node:
        await node.boot(load_services(ROOT / "supervisors"), only=["aria_security"])
        secrets = Secrets(node, caller="bench")
        await secrets.put("bench/secret", {"user": "aria", "password": "x" * 32})
        for concurrency in (1, CONCURRENCY):
            results[f"{backend}, service, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: secrets.get("bench/secret")
            )
        actor = node.whereis("aria_security.secrets")
        assert actor is not None
        store = actor._proc.actor.store  # type: ignore[union-attr]
        for concurrency in (1, CONCURRENCY):
            results[f"{backend}, store alone, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: store.get("bench/secret")
            )
    return results


async def query_rates(dsn: str, n: int, repeats: int) -> dict[str, float]:
    results: dict[str, float] = {}
    pool = await asyncpg.create_pool(dsn, min_size=CONCURRENCY, max_size=CONCURRENCY)
    timed = await asyncpg.create_pool(
        dsn, min_size=CONCURRENCY, max_size=CONCURRENCY, command_timeout=30.0
    )
    database = PostgresDatabase("bench", dsn, min_size=CONCURRENCY, max_size=CONCURRENCY)
    await database.open()
    try:
        for concurrency in (1, CONCURRENCY):
            results[f"asyncpg pool, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: pool.fetchval("SELECT $1::int", 1)
            )
            results[f"asyncpg pool + command_timeout, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: timed.fetchval("SELECT $1::int", 1)
            )
            results[f"aria_data postgres, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: database.fetchval("SELECT $1::int", 1)
            )
    finally:
        await pool.close()
        await timed.close()
        await database.close()
    sqlite = SqliteDatabase("bench", Path(tempfile.mkdtemp()) / "bench.db", readers=4)
    await sqlite.open()
    try:
        for concurrency in (1, CONCURRENCY):
            results[f"aria_data sqlite, {concurrency} caller(s)"] = await best(
                repeats, n, concurrency, lambda: sqlite.fetchval("SELECT $1", 1)
            )
    finally:
        await sqlite.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="Foundation benchmark")
    parser.add_argument("--reads", type=int, default=4000)
    parser.add_argument("--queries", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "foundation.json")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"python  : {sys.version.split()[0]}; {os.cpu_count()} cores", flush=True)

    bao = OpenBaoServer()
    cluster = PostgresCluster(durable=False)
    try:
        bao.start()
        cluster.start()
        token = Path(tempfile.mkdtemp()) / "token"
        token.write_text(bao.root_token)
        token.chmod(0o600)
        secrets: dict[str, float] = {}
        secrets |= asyncio.run(secrets_rates("embedded", {}, args.reads, args.repeats))
        openbao = {
            "backend": "openbao",
            "openbao": {"address": bao.address, "token_file": str(token)},
        }
        secrets |= asyncio.run(secrets_rates("openbao", openbao, args.reads // 4, args.repeats))
        queries = asyncio.run(query_rates(cluster.tcp_dsn("postgres"), args.queries, args.repeats))
    finally:
        bao.destroy()
        cluster.destroy()

    print("\n| secret reads | reads/s |\n|---|---:|")
    for name, value in secrets.items():
        print(f"| {name} | {value:,.0f} |")
    print("\n| query round trips (SELECT $1::int) | queries/s | vs asyncpg |\n|---|---:|---:|")
    for name, value in queries.items():
        concurrency = name.rsplit(", ", 1)[1]
        direct = queries[f"asyncpg pool, {concurrency}"]
        ratio = f"{value / direct:.2f}x" if "sqlite" not in name else ""
        print(f"| {name} | {value:,.0f} | {ratio} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"secrets": secrets, "queries": queries}, indent=2) + "\n")
    print(f"\njson    : {args.json}")


if __name__ == "__main__":
    main()
