"""Keeping stores honest: ``verify`` an index against stores, ``verify`` a store's chunks
against their ids (``repair`` removes the bad ones), ``prune`` chunks no index uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .chunks import open_chunk
from .errors import ChunkMissing, CorruptChunk
from .ids import ChunkId
from .index import Index
from .pipeline import OrderedPool
from .stores.base import Store


@dataclass
class VerifyReport:
    """What a verification found; ``ok`` when nothing is missing or corrupt."""

    checked: int = 0
    missing: list[ChunkId] = field(default_factory=list)
    corrupt: list[tuple[ChunkId, str]] = field(default_factory=list)
    removed: list[ChunkId] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


def _check_one(store: Store, cid: ChunkId, digest: str, max_size: int) -> tuple[str, str]:
    try:
        open_chunk(store.get(cid), cid, digest, max_size=max_size)
    except ChunkMissing:
        return "missing", ""
    except CorruptChunk as exc:
        return "corrupt", str(exc)
    return "ok", ""


def verify_index(
    index: Index | str | os.PathLike[str],
    store: Store,
    *,
    workers: int | None = None,
) -> VerifyReport:
    """Check that ``store`` holds every chunk of ``index``, intact (read and hashed)."""
    if not isinstance(index, Index):
        index = Index.read(index)
    report = VerifyReport()
    ids = sorted(index.unique_ids())
    with OrderedPool[tuple[ChunkId, str, str]](workers) as pool:
        for cid in ids:
            pool.submit(lambda c: (c, *_check_one(store, c, index.digest, index.max_size)), cid)
        for cid, outcome, why in pool.drain():
            report.checked += 1
            if outcome == "missing":
                report.missing.append(cid)
            elif outcome == "corrupt":
                report.corrupt.append((cid, why))
    return report


def verify_store(
    store: Store,
    *,
    digest: str = "sha512-256",
    repair: bool = False,
    max_size: int = 128 * 1024 * 1024,
    workers: int | None = None,
) -> VerifyReport:
    """Check every chunk in ``store`` against its id; with ``repair``, remove bad ones.

    A store mixing digests cannot be verified in one pass: every chunk is checked
    against ``digest``.
    """
    report = VerifyReport()
    with OrderedPool[tuple[ChunkId, str, str]](workers) as pool:
        for cid in store.ids():
            pool.submit(lambda c: (c, *_check_one(store, c, digest, max_size)), cid)
            for item in pool.results():
                _tally(report, store, item, repair)
        for item in pool.drain():
            _tally(report, store, item, repair)
    return report


def _tally(
    report: VerifyReport, store: Store, item: tuple[ChunkId, str, str], repair: bool
) -> None:
    cid, outcome, why = item
    report.checked += 1
    if outcome == "corrupt":
        report.corrupt.append((cid, why))
        if repair:
            store.remove(cid)
            report.removed.append(cid)
    elif outcome == "missing":  # listed, then gone: removed concurrently
        report.missing.append(cid)


@dataclass
class PruneReport:
    kept: int = 0
    removed: int = 0


def prune(
    store: Store, indexes: Iterable[Index | str | os.PathLike[str]], *, dry_run: bool = False
) -> PruneReport:
    """Remove every chunk of ``store`` that none of ``indexes`` uses.

    Every index is read before anything is removed: an unreadable index stops the
    prune with :class:`~.errors.InvalidIndex` and nothing is deleted. Chunks written
    while the prune runs may be removed if no listed index uses them yet; run it when
    no ``make`` into the store is in progress (the service serialises the two).
    """
    keep: set[bytes] = set()
    for item in indexes:
        index = item if isinstance(item, Index) else Index.read(item)
        keep |= index.unique_ids()
    report = PruneReport()
    doomed = []
    for cid in store.ids():
        if cid in keep:
            report.kept += 1
        else:
            doomed.append(cid)
    if not dry_run:
        for cid in doomed:
            store.remove(cid)
    report.removed = len(doomed)
    return report
