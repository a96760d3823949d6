"""Table leases: an exclusive lock across nodes where session advisory locks fail.

PostgreSQL's ``pg_advisory_lock`` is held by one server session. Two setups break
that: CockroachDB accepts the function but it locks nothing (a no-op kept for
ORMs), and a PgBouncer in transaction pooling mode runs each statement on whatever
server session is free, so the session that took the lock is not the one that
unlocks it. There :func:`lease` takes the lock as a row of ``aria_locks``:

- taken by inserting the row, or by taking over a row whose lease has expired
  (``expires_at`` is the database's clock, so the nodes' clocks do not matter);
- kept alive while the block runs: a heartbeat moves ``expires_at`` ``ttl`` seconds
  ahead every ``ttl / 3`` seconds;
- released by deleting the row (only the holder's own row is deleted).

A holder that dies leaves its row behind; ``ttl`` seconds after its last heartbeat
another node takes the lock over. A holder whose heartbeats cannot reach the
database for ``ttl`` seconds may lose the lease while its block still runs: that is
logged as the error ``lock_lease_lost`` (the block is not interrupted; migrations
are protected a second time by their bookkeeping table's primary key).

Every statement stands alone (autocommit), so this works through any connection
pool, including PgBouncer's transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import structlog

from .api import DatabaseError, QueryError, affected

logger = structlog.get_logger("aria_data")

TABLE: Final = "aria_locks"
CREATE_TABLE: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)
"""
TAKE: Final = f"""
INSERT INTO {TABLE} (name, holder, expires_at)
VALUES ($1, $2, now() + $3::float8 * INTERVAL '1 second')
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE {TABLE}.expires_at < now()
RETURNING holder
"""
RENEW: Final = (
    f"UPDATE {TABLE} SET expires_at = now() + $3::float8 * INTERVAL '1 second' "
    "WHERE name = $1 AND holder = $2"
)
RELEASE: Final = f"DELETE FROM {TABLE} WHERE name = $1 AND holder = $2"
HOLDER: Final = f"SELECT holder, expires_at - now() AS remaining FROM {TABLE} WHERE name = $1"
DEFAULT_TTL: Final = 30.0
POLL: Final = 0.25


class Statements(Protocol):
    """What a lease needs of a database: standalone statements."""

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str: ...

    async def fetchrow(
        self, sql: str, *args: Any, timeout: float | None = None
    ) -> dict[str, Any] | None: ...


def new_holder() -> str:
    """A name for one holding: the host, the process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


async def create_table(db: Statements) -> None:
    """Create ``aria_locks`` if it is missing (a concurrent creation is tolerated)."""
    try:
        await db.execute(CREATE_TABLE)
    except QueryError:  # two sessions created it at once: it exists now
        await db.execute(CREATE_TABLE)


@asynccontextmanager
async def lease(
    db: Statements,
    key: str,
    *,
    ttl: float = DEFAULT_TTL,
    poll: float = POLL,
    holder: str | None = None,
) -> AsyncIterator[str]:
    """Hold the lock ``key`` for the block; yields the holder's name.

    Waits (polling every ``poll`` seconds, with jitter) as long as another holder
    keeps its lease alive, like ``pg_advisory_lock``.

    Raises:
        ValueError: ``ttl`` or ``poll`` is not positive.
        DatabaseError: the database failed while taking the lock (the error of
            the statement); nothing is held then.
    """
    if ttl <= 0 or poll <= 0:
        raise ValueError(f"a lease needs ttl > 0 and poll > 0, not ttl={ttl}, poll={poll}")
    me = holder or new_holder()
    await create_table(db)
    told = False
    while True:
        row = await db.fetchrow(TAKE, key, me, ttl)
        if row is not None:
            break
        if not told:
            current = await db.fetchrow(HOLDER, key)
            if current is not None:
                logger.info("lock_waiting", lock=key, holder=current["holder"])
            told = True
        await asyncio.sleep(poll * (0.5 + random.random()))
    heartbeat = asyncio.create_task(_keep_alive(db, key, me, ttl), name=f"lease {key}")
    try:
        yield me
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        try:
            await db.execute(RELEASE, key, me)
        except DatabaseError as exc:  # the lease expires by itself
            logger.warning("lock_release_failed", lock=key, error=str(exc), expires_in=ttl)


async def _keep_alive(db: Statements, key: str, me: str, ttl: float) -> None:
    """Renew the lease every ``ttl / 3`` seconds until cancelled."""
    renewed = time.monotonic()
    lost = False
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            still = affected(await db.execute(RENEW, key, me, ttl, timeout=ttl / 3)) == 1
        except DatabaseError as exc:
            if not lost and time.monotonic() - renewed >= ttl:
                lost = True
                logger.error("lock_lease_lost", lock=key, holder=me, error=str(exc))
            continue
        if still:
            renewed = time.monotonic()
        elif not lost:
            lost = True
            logger.error("lock_lease_lost", lock=key, holder=me, error="taken over")
