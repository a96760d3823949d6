"""The integrity check: reads a sample (or all) of the chunks live versions use (files
and directories alike) and reports missing and corrupt ones; ``repair`` removes the
corrupt ones so that the next add of the same content stores them again.

The caller holds the store's :class:`~.locks.StoreLock` shared around a check.
"""

from __future__ import annotations

import random
import threading

import msgspec

from ..._runtime.blocking import run_blocking
from .chunks import open_chunk
from .errors import ChunkMissing, CorruptChunk
from .ids import ChunkId
from .index_files import IndexFiles, read_live
from .pipeline import OrderedPool
from .rows import CatalogueRows
from .stores.base import Store


class IntegrityReport(msgspec.Struct, frozen=True, kw_only=True):
    """One store's integrity check: chunks of live versions read and hashed.

    ``missing``/``corrupt``/``removed`` are chunk ids (hex); ``bad_indexes`` the live
    versions whose index file is missing or damaged; ``affected`` the live versions
    (``asset@N``) using a missing or corrupt chunk.
    """

    store: str
    versions: int = 0
    chunks: int = 0
    checked: int = 0
    sampled: bool = False
    missing: list[str] = msgspec.field(default_factory=list)
    corrupt: list[str] = msgspec.field(default_factory=list)
    removed: list[str] = msgspec.field(default_factory=list)
    bad_indexes: list[str] = msgspec.field(default_factory=list)
    affected: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.bad_indexes)


def check_chunk(store: Store, chunk_id: ChunkId, digest: str) -> tuple[ChunkId, str]:
    """``(chunk_id, "ok" | "missing" | "corrupt")``: the chunk read from ``store`` and
    checked against its id."""
    try:
        open_chunk(store.get(chunk_id), chunk_id, digest)
    except ChunkMissing:
        return chunk_id, "missing"
    except CorruptChunk:
        return chunk_id, "corrupt"
    return chunk_id, "ok"


async def check_integrity(
    rows: CatalogueRows,
    files: IndexFiles,
    store_name: str,
    store: Store,
    *,
    sample: int | None,
    repair: bool,
    workers: int | None = None,
    rng: random.Random | None = None,
    cancel: threading.Event | None = None,
) -> IntegrityReport:
    """Read and hash chunks the live versions in ``store`` use: ``sample`` of them
    chosen at random, or all (``None``). ``repair`` removes corrupt ones."""
    cancel = cancel or threading.Event()
    live = await rows.live_in_store(store_name)
    indexes, errors = await run_blocking(read_live, files, live)
    rng = rng or random.Random()

    def check() -> tuple[int, int, list[str], list[str], list[str], list[str]]:
        digests: dict[bytes, str] = {}
        for index in indexes.values():
            for chunk_id in index.unique_ids():
                digests.setdefault(chunk_id, index.digest)
        everything = sorted(digests)
        chosen = (
            everything
            if sample is None or sample >= len(everything)
            else rng.sample(everything, sample)
        )
        missing: list[str] = []
        corrupt: list[str] = []
        removed: list[str] = []
        checked = 0
        with OrderedPool[tuple[ChunkId, str]](workers) as pool:
            for raw in chosen:
                if cancel.is_set():
                    break
                pool.submit(check_chunk, store, ChunkId(raw), digests[raw])
            for chunk_id, outcome in pool.drain():
                checked += 1
                if outcome == "missing":
                    missing.append(chunk_id.hex())
                elif outcome == "corrupt":
                    corrupt.append(chunk_id.hex())
                    if repair and store.writable:
                        store.remove(chunk_id)
                        removed.append(chunk_id.hex())
        bad = set(missing) | set(corrupt)
        affected_versions = []
        if bad:
            for row in live:
                found = indexes.get(str(row["index_digest"]))
                if found is not None and any(c.hex() in bad for c in found.unique_ids()):
                    affected_versions.append(f"{row['asset']}@{row['number']}")
        return len(everything), checked, missing, corrupt, removed, affected_versions

    total, checked, missing, corrupt, removed, affected_versions = await run_blocking(check)
    return IntegrityReport(
        store=store_name,
        versions=len(live),
        chunks=total,
        checked=checked,
        sampled=sample is not None and sample < total,
        missing=sorted(missing),
        corrupt=sorted(corrupt),
        removed=sorted(removed),
        bad_indexes=sorted(f"{key}: {message}" for key, message in errors.items()),
        affected=sorted(affected_versions),
    )
