"""aria_storage's catalogue: named assets and their versions.

The functional core behind the ``aria_storage.catalogue`` and
``aria_storage.maintenance`` actors (no actors here: plain async code over aria_data
and blocking store calls sent to worker threads).

* An **asset** has a name and lives in one chunk store. Each **version** is made
  (chunked, deduplicated, compressed) into that store from a file (a ``blob``
  version, indexed by a ``.caibx``) or from a directory (an ``archive`` version: the
  tree's catar archive, indexed by a ``.caidx``, with the feature flags of
  :func:`~.settings.archive_flags`); an asset's versions are all files or all
  directories. The index is written under the index directory, named by its
  content (:mod:`.index_files`), then recorded in one transaction with its kind,
  size, chunk counts, what it added to the store and optional JSON metadata.
* A **fetch** writes a file version to a file (atomically, the file already there
  seeding it) and a directory version to a directory, swapped in whole once complete
  (the directory already there seeding it).
* **Retention** (:mod:`.retention`) retires versions; the **garbage collector**
  (:mod:`.collector`) removes what no live version uses; the **integrity check**
  (:mod:`.integrity`) reads chunks of live versions. Locking (:mod:`.locks`) is the
  callers' business.

The names of those modules are re-exported here, where they used to live.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..._runtime.blocking import run_blocking
from ..data.api import Database, Row
from .archive import UntarStats, make_archive, untar
from .catalogue_errors import (
    AssetConflict,
    CatalogueError,
    InvalidName,
    UnknownAsset,
    UnknownStore,
    UnknownVersion,
    VersionRetired,
)
from .checks import (
    METADATA_LIMIT,
    NAME,
    NAME_LIMIT,
    check_asset_name,
    check_source,
    check_target,
    check_target_path,
    metadata_text,
)
from .collector import GcReport, collect_garbage
from .errors import ChunkMissing, StorageError
from .extract import extract
from .ids import ChunkId
from .index import Index
from .index_files import (
    ARCHIVE_INDEX_SUFFIX,
    INDEX_SUFFIX,
    IndexFiles,
    IndexGuard,
    VersionKind,
    index_digest,
    index_relpath,
    label,
)
from .integrity import IntegrityReport, check_integrity
from .locks import Coordination, StoreLock
from .make import MakeStats, make
from .replies import AssetDetails, AssetSummary, FetchResult, VersionInfo
from .retention import DAY, RetiredVersion, apply_policy, retention_victims, retire
from .rows import CatalogueRows, version_row
from .settings import StorageSettings, archive_flags
from .stores.base import Store

MIGRATIONS: Final = Path(__file__).resolve().parent / "sql"

__all__ = [
    "ARCHIVE_INDEX_SUFFIX",
    "DAY",
    "INDEX_SUFFIX",
    "METADATA_LIMIT",
    "MIGRATIONS",
    "NAME",
    "NAME_LIMIT",
    "AssetConflict",
    "AssetDetails",
    "AssetSummary",
    "Catalogue",
    "CatalogueError",
    "CatalogueRows",
    "Coordination",
    "FetchResult",
    "GcReport",
    "IndexFiles",
    "IndexGuard",
    "IntegrityReport",
    "InvalidName",
    "RetiredVersion",
    "StoreLock",
    "UnknownAsset",
    "UnknownStore",
    "UnknownVersion",
    "VersionInfo",
    "VersionKind",
    "VersionRetired",
    "check_asset_name",
    "index_digest",
    "index_relpath",
    "retention_victims",
]

_KIND_WORDS: Final[dict[str, str]] = {"blob": "files", "archive": "directories"}


class Catalogue:
    """The catalogue over aria_data's database and the index directory.

    ``clock`` gives wall-clock seconds (``created_at``, retention, grace periods).
    Methods that touch a store take the :class:`Store` (opened by a store actor) and
    run its blocking calls in worker threads; locking is the caller's business.
    """

    def __init__(
        self,
        db: Database,
        files: IndexFiles,
        settings: StorageSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.rows = CatalogueRows(db)
        self.files = files
        self.settings = settings
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------

    async def asset_store(self, asset: str) -> str | None:
        """The store of ``asset``, or ``None`` if there is no such asset."""
        row = await self.rows.asset(check_asset_name(asset))
        return str(row["store"]) if row is not None else None

    async def assets(self) -> list[AssetSummary]:
        versions: dict[str, list[VersionInfo]] = {}
        for row in await self.rows.versions():
            versions.setdefault(str(row["asset"]), []).append(version_row(row))
        out = []
        for row in await self.rows.assets():
            name = str(row["name"])
            mine = versions.get(name, [])
            live = [v for v in mine if not v.retired]
            out.append(
                AssetSummary(
                    name=name,
                    store=str(row["store"]),
                    versions=len(live),
                    retired=len(mine) - len(live),
                    latest=live[-1].number if live else 0,
                    size=live[-1].size if live else 0,
                    created_at=float(row["created_at"]),
                    updated_at=float(row["updated_at"]),
                    kind=mine[-1].kind if mine else "blob",
                )
            )
        return out

    async def _require_asset(self, asset: str) -> Row:
        row = await self.rows.asset(check_asset_name(asset))
        if row is None:
            raise UnknownAsset(f"no asset {asset!r}")
        return row

    async def versions(self, asset: str, include_retired: bool = False) -> list[VersionInfo]:
        """The versions of ``asset``, oldest first (live ones only by default).

        Raises:
            UnknownAsset, InvalidName.
        """
        await self._require_asset(asset)
        rows = await self.rows.versions(asset, live_only=not include_retired)
        return [version_row(row) for row in rows]

    async def version(self, asset: str, number: int = 0) -> VersionInfo:
        """Version ``number`` of ``asset`` (0: the newest live one), retired or not.

        Raises:
            UnknownAsset, UnknownVersion, InvalidName.
        """
        await self._require_asset(asset)
        if number < 0:
            raise UnknownVersion(f"version numbers start at 1, not {number}")
        if number == 0:
            row = await self.rows.latest(asset)
            if row is None:
                raise UnknownVersion(f"asset {asset!r} has no live version")
        else:
            row = await self.rows.version(asset, number)
            if row is None:
                raise UnknownVersion(f"asset {asset!r} has no version {number}")
        return version_row(row)

    async def live_version(self, asset: str, number: int = 0) -> VersionInfo:
        """As :meth:`version`, refusing a retired one (:class:`VersionRetired`)."""
        info = await self.version(asset, number)
        if info.retired:
            raise VersionRetired(f"{label(asset, info.number)} was retired; its chunks may be gone")
        return info

    async def index(self, asset: str, number: int = 0) -> tuple[VersionInfo, Index]:
        """A live version and its index (read and checked against its digest): a
        ``.caibx`` for a file version, a ``.caidx`` for a directory version.

        Raises:
            UnknownAsset, UnknownVersion, VersionRetired, InvalidName,
            InvalidIndex: the index file is missing or damaged.
        """
        info = await self.live_version(asset, number)
        index = await run_blocking(
            self.files.read, info.index_digest, label(asset, info.number), info.kind
        )
        return info, index

    # -- adding ----------------------------------------------------------------------------

    async def resolve_store(self, asset: str, store: str = "") -> str:
        """The store a new version of ``asset`` goes into: the asset's own, else
        ``store``, else the default.

        Raises:
            AssetConflict: the asset lives in another store than ``store``.
            UnknownStore, InvalidName.
        """
        existing = await self.asset_store(asset)
        if existing is not None:
            if store and store != existing:
                raise AssetConflict(
                    f"asset {asset!r} lives in store {existing!r}, not {store!r} "
                    "(all versions of an asset share one store)"
                )
            return existing
        chosen = store or self.settings.default_store
        config = self.settings.stores.get(chosen)
        if config is None:
            raise UnknownStore(
                f"no store {chosen!r} (known: {', '.join(sorted(self.settings.stores))})"
            )
        if not config.writable:
            raise AssetConflict(f"store {chosen!r} is read-only; new assets cannot go there")
        return chosen

    async def _check_kind(
        self, rows: CatalogueRows, asset: str, kind: VersionKind, path: Path
    ) -> None:
        existing = await rows.asset_kind(asset)
        if existing is not None and existing != kind:
            what = "is a directory" if kind == "archive" else "is a file, not a directory"
            raise AssetConflict(
                f"asset {asset!r} holds {_KIND_WORDS[existing]} and {path} {what}: all "
                "versions of an asset are files, or all are directories (use another asset)"
            )

    async def add_version(
        self,
        asset: str,
        path: str,
        store_name: str,
        store: Store,
        metadata: Mapping[str, Any] | None = None,
        *,
        with_: Sequence[str] = (),
        without: Sequence[str] = (),
    ) -> tuple[VersionInfo, MakeStats]:
        """Make ``path`` (on the node) into ``store`` and record it as the next version
        of ``asset`` (created in ``store_name`` if new): a file as a ``blob`` version,
        a directory as an ``archive`` version recording what the feature flags say
        (``with_``/``without``: casync's names, replacing the settings').

        Raises:
            InvalidName, ValueError (a relative path, bad metadata, feature flags for a
            file), AssetConflict (another store; a directory for an asset of files or
            the reverse), UnsupportedFeature (an unknown feature flag name),
            StorageError (the file or directory cannot be read, the store fails),
            DatabaseError.
        """
        check_asset_name(asset)
        source, kind = check_source(path)
        metadata_json = metadata_text(metadata)
        settings = self.settings
        flags = 0
        if kind == "archive":
            flags = archive_flags(settings, with_, without)
        elif with_ or without:
            raise ValueError(f"feature flags (with/without) are for directories; {path} is a file")
        await self._check_kind(self.rows, asset, kind, source)

        def build() -> tuple[Index, MakeStats, str]:
            if kind == "archive":
                try:
                    index, stats = make_archive(
                        source,
                        store,
                        feature_flags=flags,
                        params=settings.chunker,
                        digest=settings.digest,
                        level=settings.compression_level,
                        workers=settings.make_workers,
                    )
                except OSError as exc:
                    where = f" ({exc.filename})" if exc.filename else ""
                    raise StorageError(
                        f"cannot archive the directory {path}: {exc.strerror or exc}{where}"
                    ) from None
            else:
                index, stats = make(
                    source,
                    store,
                    params=settings.chunker,
                    digest=settings.digest,
                    level=settings.compression_level,
                    workers=settings.make_workers,
                )
            return index, stats, self.files.write(index, kind)

        index, stats, digest = await run_blocking(build)
        try:
            now = self.clock()
            async with self.db.transaction() as tx:
                rows = CatalogueRows(tx)
                await rows.create_asset(asset, store_name, now)
                number, actual = await rows.take_number(asset, now)
                if actual != store_name:
                    raise AssetConflict(
                        f"asset {asset!r} lives in store {actual!r}, not {store_name!r}"
                    )
                await self._check_kind(rows, asset, kind, source)
                await rows.insert_version(
                    {
                        "asset": asset,
                        "number": number,
                        "kind": kind,
                        "index_digest": digest,
                        "index_path": index_relpath(digest, kind),
                        "size": index.blob_size,
                        "chunks": stats.chunks,
                        "unique_chunks": stats.unique_chunks,
                        "new_chunks": stats.new_chunks,
                        "new_bytes": stats.bytes_stored,
                        "digest": settings.digest,
                        "metadata": metadata_json,
                        "created_at": now,
                        "retired": 0,
                    }
                )
        finally:
            self.files.guard.release(digest)
        return await self.version(asset, number), stats

    # -- fetching --------------------------------------------------------------------------

    async def fetch(
        self, asset: str, number: int, target: str, store: Store, seeds: Sequence[str] = ()
    ) -> FetchResult:
        """Write a live version to ``target`` (a path on the node), atomically.

        A file version goes to a file; the file already there and ``seeds`` (files)
        seed it. A directory version goes to a directory, built beside it and swapped
        in whole once complete (what was there is replaced; on any error it stays as it
        was); the directory already there and ``seeds`` (directories, or ``.catar``
        files) seed it, as ``casync extract --seed`` does.

        Raises:
            UnknownAsset, UnknownVersion, VersionRetired, InvalidName, ValueError,
            InvalidIndex, InvalidArchive, ChunkMissing, CorruptChunk, StorageError (the
            target is a directory for a file version, a file for a directory version;
            a seed cannot be read).
        """
        destination = check_target_path(target)
        for seed in seeds:
            if not Path(seed).is_absolute():
                raise ValueError(f"seed paths must be absolute: {seed!r}")
        info = await self.live_version(asset, number)
        check_target(destination, info.kind)
        info, index = await self.index(asset, info.number)
        if info.kind == "archive":
            return await self._untar(info, index, destination, store, seeds)
        stats = await run_blocking(
            lambda: extract(
                index,
                destination,
                [store],
                seeds=list(seeds),
                in_place=True,
                workers=self.settings.make_workers,
            )
        )
        return FetchResult(
            asset=asset,
            version=info.number,
            target=str(destination),
            size=index.blob_size,
            chunks=stats.chunks,
            unique_chunks=stats.unique_chunks,
            from_store=stats.from_store,
            from_seed=stats.from_seed,
            zero_chunks=stats.zero_chunks,
            bytes_written=stats.bytes_written,
        )

    async def _untar(
        self,
        info: VersionInfo,
        index: Index,
        destination: Path,
        store: Store,
        seeds: Sequence[str],
    ) -> FetchResult:
        stats = UntarStats()

        def run() -> None:
            try:
                untar(
                    index,
                    destination,
                    [store],
                    seeds=list(seeds),
                    stats=stats,
                    workers=self.settings.make_workers,
                )
            except OSError as exc:
                where = f" ({exc.filename})" if exc.filename else ""
                raise StorageError(
                    f"cannot write {label(info.asset, info.number)} to {destination}: "
                    f"{exc.strerror or exc}{where}"
                ) from None

        await run_blocking(run)
        return FetchResult(
            asset=info.asset,
            version=info.number,
            target=str(destination),
            size=index.blob_size,
            chunks=stats.chunks,
            unique_chunks=len(index.unique_ids()),
            from_store=stats.from_store,
            from_seed=stats.from_seed,
            zero_chunks=0,
            bytes_written=index.blob_size,
            kind="archive",
        )

    # -- retiring and deleting -------------------------------------------------------------

    async def retire(self, asset: str, numbers: Sequence[int]) -> list[RetiredVersion]:
        """Retire versions of ``asset`` explicitly (never its newest live one).

        Raises:
            UnknownAsset, UnknownVersion, AssetConflict (the newest), InvalidName.
        """
        await self._require_asset(asset)
        return await retire(self.db, asset, numbers, self.clock())

    async def apply_retention(self, asset: str | None = None) -> list[RetiredVersion]:
        """Retire what the retention policy says, for one asset or all."""
        if asset is not None:
            await self._require_asset(asset)
        settings = self.settings
        return await apply_policy(
            self.db, settings.keep_last, settings.keep_days, self.clock(), asset
        )

    async def delete_asset(self, asset: str) -> int:
        """Delete ``asset`` and every version of it; how many versions. Its chunks
        and index files go at the next garbage collection.

        Raises:
            UnknownAsset, InvalidName.
        """
        await self._require_asset(asset)
        async with self.db.transaction() as tx:
            return await CatalogueRows(tx).delete_asset(asset)

    # -- numbers ---------------------------------------------------------------------------

    async def details(self, asset: str, store: Store | None) -> AssetDetails:
        """Numbers about ``asset``'s live versions (their indexes are read; with
        ``store``, the sizes of their chunks in it too).

        Raises:
            UnknownAsset, InvalidName, InvalidIndex (a live version's index file).
        """
        row = await self._require_asset(asset)
        every = [version_row(r) for r in await self.rows.versions(asset)]
        live = [v for v in every if not v.retired]

        def count() -> tuple[int, int, int]:
            unique: set[bytes] = set()
            for version in live:
                unique |= self.files.read(
                    version.index_digest, label(asset, version.number), version.kind
                ).unique_ids()
            in_store = stored = 0
            if store is not None:
                for chunk_id in unique:
                    try:
                        stored += store.size(ChunkId(chunk_id))
                        in_store += 1
                    except ChunkMissing:
                        continue
            return len(unique), in_store, stored

        unique, in_store, stored = await run_blocking(count)
        refs = sum(v.chunks for v in live)
        return AssetDetails(
            name=asset,
            store=str(row["store"]),
            created_at=float(row["created_at"]),
            versions=len(live),
            retired=len(every) - len(live),
            latest=live[-1] if live else None,
            logical_bytes=sum(v.size for v in live),
            chunk_refs=refs,
            unique_chunks=unique,
            dedup_ratio=refs / unique if unique else 1.0,
            in_store=in_store,
            stored_bytes=stored,
            kind=every[-1].kind if every else "blob",
        )

    # -- maintenance -----------------------------------------------------------------------

    async def collect_garbage(
        self,
        store_name: str,
        store: Store,
        *,
        grace: float,
        dry_run: bool = False,
        cancel: threading.Event | None = None,
        also: Sequence[str] = (),
    ) -> GcReport:
        """Remove the chunks of ``store`` no live version uses (see :mod:`.collector`).
        Hold the store's lock exclusively around it."""
        return await collect_garbage(
            self.rows,
            self.files,
            self.clock,
            store_name,
            store,
            grace=grace,
            dry_run=dry_run,
            cancel=cancel,
            also=also,
        )

    async def check_integrity(
        self,
        store_name: str,
        store: Store,
        *,
        sample: int | None,
        repair: bool,
        rng: random.Random | None = None,
        cancel: threading.Event | None = None,
    ) -> IntegrityReport:
        """Read and hash chunks the live versions in ``store`` use: ``sample`` of them
        chosen at random, or all (``None``). ``repair`` removes corrupt ones (see
        :mod:`.integrity`)."""
        return await check_integrity(
            self.rows,
            self.files,
            store_name,
            store,
            sample=sample,
            repair=repair,
            workers=self.settings.make_workers,
            rng=rng,
            cancel=cancel,
        )
