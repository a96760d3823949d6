"""The garbage collector: removes the chunks of a store that no live version uses,
once they have been unreferenced for ``gc_grace`` seconds (tracked in
``storage_gc_candidates``), and index files no live version uses.

The live versions are files (``.caibx``) and directories (``.caidx``) alike: the
chunks of either kind of index are kept. The caller holds the store's
:class:`~.locks.StoreLock` exclusively around a collection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import msgspec

from ..._runtime.blocking import run_blocking
from .ids import ChunkId
from .index_files import IndexFiles, read_live
from .rows import CatalogueRows
from .stores.base import Store


class GcReport(msgspec.Struct, frozen=True, kw_only=True):
    """One store's garbage collection.

    ``unreferenced`` chunks no live version uses; of those, ``removed`` were removed
    and ``deferred`` wait for their grace period. ``skipped`` says why nothing was
    done (``gc = false``, a read-only store); ``error`` why it stopped (an unreadable
    live index: nothing is removed then).
    """

    store: str
    live_versions: int = 0
    referenced: int = 0
    chunk_refs: int = 0
    scanned: int = 0
    unreferenced: int = 0
    deferred: int = 0
    removed: int = 0
    removed_indexes: int = 0
    dry_run: bool = False
    skipped: str = ""
    error: str = ""


async def collect_garbage(
    rows: CatalogueRows,
    files: IndexFiles,
    clock: Callable[[], float],
    store_name: str,
    store: Store,
    *,
    grace: float,
    dry_run: bool = False,
    cancel: threading.Event | None = None,
    also: Sequence[str] = (),
) -> GcReport:
    """Remove the chunks of ``store`` no live version uses, once unreferenced for
    ``grace`` seconds. The live versions of the stores ``also`` (those ``store``
    caches) count as its own.

    A live index that cannot be read stops the collection (``error``): nothing is
    removed when it is unknown what is in use.
    """
    cancel = cancel or threading.Event()
    live = []
    for name in [store_name, *also]:
        live += await rows.live_in_store(name)
    indexes, errors = await run_blocking(read_live, files, live)
    if errors:
        first = next(iter(errors.values()))
        return GcReport(
            store=store_name,
            live_versions=len(live),
            dry_run=dry_run,
            error=f"{len(errors)} live index(es) cannot be read, nothing removed: {first}",
        )

    def census() -> tuple[set[bytes], int, set[str]]:
        keep: set[bytes] = set()
        for index in indexes.values():
            keep |= index.unique_ids()
        scanned = 0
        unreferenced = set()
        for chunk_id in store.ids():
            scanned += 1
            if chunk_id not in keep:
                unreferenced.add(chunk_id.hex())
        return keep, scanned, unreferenced

    keep, scanned, unreferenced = await run_blocking(census)
    scanned_unreferenced = len(unreferenced)
    now = clock()
    known = await rows.candidates(store_name)
    due = sorted(c for c in unreferenced if known.get(c, now) <= now - grace)
    removed = 0
    removed_indexes = 0
    if not dry_run:
        await rows.add_candidates(store_name, unreferenced - known.keys(), now)
        await rows.drop_candidates(store_name, known.keys() - unreferenced)

        def sweep() -> list[str]:
            gone = []
            for chunk_hex in due:
                if cancel.is_set():
                    break
                store.remove(ChunkId.from_hex(chunk_hex))
                gone.append(chunk_hex)
            return gone

        gone = await run_blocking(sweep)
        removed = len(gone)
        await rows.drop_candidates(store_name, gone)
        used, named = await rows.index_digests()
        removed_indexes = await run_blocking(files.remove_unused, used, grace, now, named)
    return GcReport(
        store=store_name,
        live_versions=len(live),
        referenced=len(keep),
        chunk_refs=sum(int(row["chunks"]) for row in live),
        scanned=scanned,
        unreferenced=scanned_unreferenced,
        deferred=scanned_unreferenced - len(due),
        removed=removed,
        removed_indexes=removed_indexes,
        dry_run=dry_run,
    )
