"""What every database of a node measures: query times, errors, slow queries.

One :class:`Instruments` per database records each statement's duration in a
Prometheus histogram (``aria_data_query_seconds{database}``), counts errors by
kind, and logs a ``slow_query`` warning (the statement cut to 300 characters,
never its arguments) when one takes longer than ``slow_query`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import structlog
from prometheus_client import Counter, Gauge, Histogram

from ..._runtime.node import Node

logger = structlog.get_logger("aria_data")
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Instruments:
    """Timing, counting and slow-query logging for one database."""

    def __init__(self, node: Node | None, database: str, slow_query: float) -> None:
        self.database = database
        self.slow_query = slow_query
        self.waiting = 0
        if node is None:
            self.seconds = self.errors = self.pool = None
            return
        self.seconds = node.metric(
            Histogram,
            "aria_data_query_seconds",
            "Statement durations.",
            labelnames=["database"],
            buckets=BUCKETS,
        ).labels(database=database)
        self.errors = node.metric(
            Counter,
            "aria_data_errors",
            "Failed statements by kind.",
            labelnames=["database", "kind"],
        )
        self.pool = node.metric(
            Gauge,
            "aria_data_pool_connections",
            "Connections by state.",
            labelnames=["database", "state"],
        )

    @contextmanager
    def timed(self, sql: str) -> Iterator[None]:
        """Time one statement; log it if slow."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(sql, time.perf_counter() - started)

    def observe(self, sql: str, elapsed: float) -> None:
        """Record one statement that took ``elapsed`` seconds; log it if slow."""
        if self.seconds is not None:
            self.seconds.observe(elapsed)
        if elapsed >= self.slow_query:
            logger.warning(
                "slow_query",
                database=self.database,
                seconds=round(elapsed, 4),
                sql=" ".join(sql.split())[:300],
            )

    def failed(self, kind: str) -> None:
        if self.errors is not None:
            self.errors.labels(database=self.database, kind=kind).inc()

    def connections(self, size: int, idle: int) -> None:
        if self.pool is not None:
            self.pool.labels(database=self.database, state="open").set(size)
            self.pool.labels(database=self.database, state="idle").set(idle)
            self.pool.labels(database=self.database, state="waiting").set(self.waiting)
