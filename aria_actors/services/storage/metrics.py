"""aria_storage's Prometheus metrics, and :class:`MeasuredStore`, which times every
call of a store into them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from ..._runtime.node import Node
from .errors import ChunkMissing
from .ids import ChunkId
from .stores.base import Store

LATENCY_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


class Metrics:
    """aria_storage's Prometheus metrics in the node's registry (shared across restarts)."""

    def __init__(self, node: Node) -> None:
        self.store_seconds = node.metric(
            Histogram,
            "aria_storage_store_seconds",
            "Chunk store call durations, by store and operation.",
            labelnames=["store", "op"],
            buckets=LATENCY_BUCKETS,
        )
        self.store_errors = node.metric(
            Counter,
            "aria_storage_store_errors",
            "Chunk store calls that failed (not a missing chunk), by store and operation.",
            labelnames=["store", "op"],
        )
        self.chunks = node.metric(
            Gauge, "aria_storage_chunks", "Chunks in the store (last scan).", labelnames=["store"]
        )
        self.bytes_stored = node.metric(
            Gauge,
            "aria_storage_bytes_stored",
            "Compressed bytes of the chunks in the store (last scan).",
            labelnames=["store"],
        )
        self.live_chunks = node.metric(
            Gauge,
            "aria_storage_live_chunks",
            "Distinct chunks the live versions use (last garbage collection).",
            labelnames=["store"],
        )
        self.dedup_ratio = node.metric(
            Gauge,
            "aria_storage_dedup_ratio",
            "Chunk references of the live versions per distinct chunk (last collection).",
            labelnames=["store"],
        )
        self.ingested_bytes = node.metric(
            Counter,
            "aria_storage_ingested_bytes",
            "Bytes of the versions added.",
            labelnames=["store"],
        )
        self.ingested_chunks = node.metric(
            Counter,
            "aria_storage_ingested_chunks",
            "Chunks in the indexes of the versions added.",
            labelnames=["store"],
        )
        self.new_chunks = node.metric(
            Counter,
            "aria_storage_new_chunks",
            "Chunks written to the store by adds (the rest were deduplicated).",
            labelnames=["store"],
        )
        self.new_bytes = node.metric(
            Counter,
            "aria_storage_new_bytes",
            "Compressed bytes written to the store by adds.",
            labelnames=["store"],
        )
        self.operations = node.metric(
            Counter,
            "aria_storage_operations",
            "Catalogue and maintenance requests, by operation and outcome.",
            labelnames=["op", "outcome"],
        )
        self.jobs = node.metric(
            Gauge, "aria_storage_jobs", "Adds and fetches running.", labelnames=["op"]
        )
        self.retired = node.metric(
            Counter, "aria_storage_versions_retired", "Versions retired.", labelnames=["reason"]
        )
        self.integrity_checked = node.metric(
            Counter,
            "aria_storage_integrity_checked_chunks",
            "Chunks read and hashed by integrity checks.",
            labelnames=["store"],
        )
        self.integrity_failures = node.metric(
            Counter,
            "aria_storage_integrity_failures",
            "Problems integrity checks found: missing or corrupt chunks, bad index files.",
            labelnames=["store", "kind"],
        )
        self.gc_removed = node.metric(
            Counter,
            "aria_storage_gc_removed_chunks",
            "Chunks removed by the garbage collector.",
            labelnames=["store"],
        )
        self.gc_removed_indexes = node.metric(
            Counter, "aria_storage_gc_removed_indexes", "Index files removed by the collector."
        )


class MeasuredStore(Store):
    """A store whose every call is timed into ``aria_storage_store_seconds{store, op}``
    (thread-safe, like the store it wraps; failures other than a missing chunk are
    counted in ``aria_storage_store_errors``)."""

    def __init__(self, inner: Store, name: str, metrics: Metrics) -> None:
        self.inner = inner
        self.name = name
        self.location = inner.location
        self.writable = inner.writable
        self._seconds = {
            op: metrics.store_seconds.labels(store=name, op=op)
            for op in ("get", "has", "put", "remove", "size", "ids")
        }
        self._errors = metrics.store_errors

    @contextlib.contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except ChunkMissing:
            raise
        except Exception:
            self._errors.labels(store=self.name, op=op).inc()
            raise
        finally:
            self._seconds[op].observe(time.perf_counter() - started)

    def get(self, chunk_id: ChunkId) -> bytes:
        with self._timed("get"):
            return self.inner.get(chunk_id)

    def has(self, chunk_id: ChunkId) -> bool:
        with self._timed("has"):
            return self.inner.has(chunk_id)

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        with self._timed("put"):
            self.inner.put(chunk_id, blob)

    def remove(self, chunk_id: ChunkId) -> None:
        with self._timed("remove"):
            self.inner.remove(chunk_id)

    def size(self, chunk_id: ChunkId) -> int:
        with self._timed("size"):
            return self.inner.size(chunk_id)

    def ids(self) -> Iterator[ChunkId]:
        with self._timed("ids"):
            yield from self.inner.ids()

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"MeasuredStore({self.name!r}, {self.inner!r})"
