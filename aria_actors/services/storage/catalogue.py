"""aria_storage's catalogue: named assets, their versions, and keeping the stores clean.

The functional core behind the ``aria_storage.catalogue`` and
``aria_storage.maintenance`` actors (no actors here: plain async code over aria_data
and blocking store calls sent to worker threads).

* An **asset** has a name and lives in one chunk store. Each **version** is a blob
  made (chunked, deduplicated, compressed) into that store; its ``.caibx`` index is
  written under ``<indexes>/<xx>/<sha256>.caibx``, named by the SHA-256 of its bytes
  (identical versions share a file, and a file changed on disk is caught when read),
  then recorded in one transaction with its size, chunk counts, what it added to the
  store and optional JSON metadata.
* **Retention** retires versions (``keep_last`` newest and/or younger than
  ``keep_days``; the newest is never retired). A retired version stays listed but can
  no longer be read: its chunks are free for the garbage collector.
* The **garbage collector** removes the chunks of a store that no live version uses,
  once they have been unreferenced for ``gc_grace`` seconds (tracked in
  ``storage_gc_candidates``), and index files no live version uses.
* The **integrity check** reads a sample (or all) of the chunks live versions use and
  reports missing and corrupt ones; ``repair`` removes the corrupt ones so that the
  next add of the same content stores them again.

Concurrency: :class:`StoreLock` is a read/write lock per store. Adds and fetches hold
it shared; the garbage collector holds it exclusively, so it never runs while a make
writes into (or dedups against) the same store, nor while a fetch reads it.
:class:`IndexGuard` keeps index files being written by an add (not yet committed)
from being deleted as orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from ..._runtime.blocking import run_blocking
from ..data.api import Connection, Database, Row, affected
from .chunks import open_chunk
from .errors import ChunkMissing, CorruptChunk, InvalidIndex, StorageError
from .extract import extract
from .ids import ChunkId
from .index import Index
from .make import MakeStats, make
from .pipeline import OrderedPool
from .settings import StorageSettings
from .stores.base import Store

MIGRATIONS: Final = Path(__file__).resolve().parent / "sql"
NAME_LIMIT: Final = 200
NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@:=-]*")
METADATA_LIMIT: Final = 64 * 1024
INDEX_SUFFIX: Final = ".caibx"
_INDEX_FILE: Final = re.compile(r"^([0-9a-f]{64})\.caibx$")
DAY: Final = 86400.0


# ======================================================================================
# Errors
# ======================================================================================


class CatalogueError(StorageError):
    """Base of the catalogue's errors (bad requests: the service keeps running)."""


class InvalidName(CatalogueError, ValueError):
    """An asset name the catalogue refuses (the message says why)."""


class UnknownAsset(CatalogueError):
    """No asset of that name."""


class UnknownVersion(CatalogueError):
    """The asset has no version of that number."""


class VersionRetired(CatalogueError):
    """The version was retired: its chunks may be gone, it cannot be read."""


class AssetConflict(CatalogueError):
    """The request contradicts the asset (another store, retiring its newest version)."""


class UnknownStore(CatalogueError):
    """No store of that name is configured (``[services.aria_storage.stores.<name>]``)."""


def check_asset_name(name: object) -> str:
    """``name`` if the catalogue accepts it as an asset name.

    Raises:
        InvalidName: not a string, empty, longer than :data:`NAME_LIMIT`, holding a path
            separator or any character but letters, digits and ``. _ + @ : = -``, or
            not starting with a letter or digit.
    """
    if not isinstance(name, str):
        raise InvalidName(f"an asset name is a string, not {type(name).__name__}")
    if not name:
        raise InvalidName("an asset name cannot be empty")
    if len(name) > NAME_LIMIT:
        raise InvalidName(f"asset name is {len(name)} characters long; the limit is {NAME_LIMIT}")
    if "/" in name or "\\" in name:
        raise InvalidName(f"asset name {name!r} must not contain a path separator ('/' or '\\')")
    if not NAME.fullmatch(name):
        raise InvalidName(
            f"asset name {name!r}: use letters, digits and . _ + @ : = - "
            "(starting with a letter or digit)"
        )
    return name


# ======================================================================================
# Replies
# ======================================================================================


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an asset: what it is, and what adding it cost the store.

    ``chunks``/``unique_chunks`` are the index's; ``new_chunks``/``new_bytes`` are the
    chunks (and their compressed bytes) the store did not hold yet when it was added:
    ``chunks - new_chunks`` were deduplicated.
    """

    asset: str
    number: int
    store: str
    size: int
    chunks: int
    unique_chunks: int
    new_chunks: int
    new_bytes: int
    digest: str
    index_digest: str
    index_path: str
    created_at: float
    retired: bool = False
    retired_at: float | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class AssetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """An asset in :meth:`Catalogue.assets`: its live versions and the newest one."""

    name: str
    store: str
    versions: int
    retired: int
    latest: int
    size: int
    created_at: float
    updated_at: float


class AssetDetails(msgspec.Struct, frozen=True, kw_only=True):
    """Numbers about an asset's live versions, read from their indexes.

    ``dedup_ratio`` is chunk references per distinct chunk across the live versions
    (1.0: nothing shared); ``stored_bytes`` the compressed bytes of those distinct
    chunks in the store, ``in_store`` how many of them it holds.
    """

    name: str
    store: str
    created_at: float
    versions: int
    retired: int
    latest: VersionInfo | None
    logical_bytes: int
    chunk_refs: int
    unique_chunks: int
    dedup_ratio: float
    in_store: int
    stored_bytes: int


class FetchResult(msgspec.Struct, frozen=True, kw_only=True):
    """What fetching a version wrote, and where its chunks came from."""

    asset: str
    version: int
    target: str
    size: int
    chunks: int
    unique_chunks: int
    from_store: int
    from_seed: int
    zero_chunks: int
    bytes_written: int


class RetiredVersion(msgspec.Struct, frozen=True):
    asset: str
    number: int
    reason: Literal["policy", "explicit"]


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


# ======================================================================================
# Coordination between adds, fetches and the collector
# ======================================================================================


class StoreLock:
    """A FIFO read/write lock on one store, for one event loop.

    ``shared()`` (adds, fetches) may be held by many at once; ``exclusive()`` (the
    garbage collector) by one, alone. Waiters are served in arrival order, so a
    waiting collector holds back later adds instead of waiting forever.
    """

    def __init__(self) -> None:
        self.readers = 0
        self.writer = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for _, future in self._waiters if not future.done())

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=False)
        try:
            yield
        finally:
            self.readers -= 1
            self._wake()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=True)
        try:
            yield
        finally:
            self.writer = False
            self._wake()

    def _grantable(self, exclusive: bool) -> bool:
        if exclusive:
            return not self.writer and self.readers == 0
        return not self.writer

    def _grant(self, exclusive: bool) -> None:
        if exclusive:
            self.writer = True
        else:
            self.readers += 1

    async def _acquire(self, exclusive: bool) -> None:
        if not self.waiting and self._grantable(exclusive):
            self._grant(exclusive)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((exclusive, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled
                if exclusive:
                    self.writer = False
                else:
                    self.readers -= 1
            self._wake()
            raise

    def _wake(self) -> None:
        while self._waiters:
            exclusive, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._grantable(exclusive):
                return
            self._waiters.popleft()
            self._grant(exclusive)
            future.set_result(None)
            if exclusive:
                return


class IndexGuard:
    """Index digests an add is writing and has not committed yet (thread-safe).

    The add registers the digest before it writes (or finds) the file and releases
    it after its transaction; the collector deletes an orphan index file only under
    the guard's lock and only if no add holds its digest.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Counter[str] = Counter()

    def hold(self, digest: str) -> None:
        with self.lock:
            self.pending[digest] += 1

    def release(self, digest: str) -> None:
        with self.lock:
            self.pending[digest] -= 1
            if self.pending[digest] <= 0:
                del self.pending[digest]


@dataclass
class Coordination:
    """What the catalogue and maintenance actors of one node share: a lock per store
    and the index guard. It outlives restarts of either actor."""

    locks: dict[str, StoreLock] = field(default_factory=dict)
    guard: IndexGuard = field(default_factory=IndexGuard)

    def lock(self, store: str) -> StoreLock:
        found = self.locks.get(store)
        if found is None:
            found = self.locks[store] = StoreLock()
        return found


# ======================================================================================
# Index files
# ======================================================================================


def index_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_relpath(digest: str) -> str:
    return f"{digest[:2]}/{digest}{INDEX_SUFFIX}"


class IndexFiles:
    """The content-addressed index files under ``root`` (blocking; call from threads)."""

    def __init__(self, root: Path, guard: IndexGuard) -> None:
        self.root = root
        self.guard = guard

    def path(self, digest: str) -> Path:
        return self.root / index_relpath(digest)

    def write(self, index: Index) -> str:
        """Write ``index`` under its digest (unless a good copy is there) and hold the
        digest in the guard; the caller releases it after committing."""
        data = index.to_bytes()
        digest = index_digest(data)
        self.guard.hold(digest)
        try:
            path = self.path(digest)
            try:
                if path.is_file() and index_digest(path.read_bytes()) == digest:
                    return digest
                path.parent.mkdir(parents=True, exist_ok=True)
                index.write(path)
            except OSError as exc:
                raise StorageError(
                    f"cannot write index file {path}: {exc.strerror or exc}"
                ) from None
        except BaseException:
            self.guard.release(digest)
            raise
        return digest

    def read(self, digest: str, label: str) -> Index:
        """The index stored under ``digest``, checked against it.

        Raises:
            InvalidIndex: the file is missing, unreadable, changed since it was
                written (its SHA-256 differs) or not a valid index; names ``label``.
        """
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidIndex(f"{label}: its index file is missing", path=str(path)) from None
        except OSError as exc:
            raise InvalidIndex(
                f"{label}: cannot read its index file: {exc.strerror or exc}", path=str(path)
            ) from None
        if index_digest(data) != digest:
            raise InvalidIndex(
                f"{label}: the index file does not match its recorded SHA-256 {digest[:16]}...: "
                "it was changed or is corrupt on disk",
                path=str(path),
            )
        try:
            return Index.parse(data, name=str(path))
        except InvalidIndex as exc:
            raise InvalidIndex(f"{label}: {exc}") from None

    def scan(self) -> Iterator[tuple[str, Path]]:
        """Every index file: (digest, path)."""
        if not self.root.is_dir():
            return
        for top in self.root.iterdir():
            if len(top.name) != 2 or not top.is_dir():
                continue
            for entry in top.iterdir():
                match = _INDEX_FILE.match(entry.name)
                if match and match[1].startswith(top.name):
                    yield match[1], entry

    def remove_unused(self, used: set[str], grace: float, now: float, known: set[str]) -> int:
        """Delete index files no live version uses: at once when a (retired or
        deleted) version named them, after ``grace`` seconds when no row ever did (an
        add that failed before its commit). Never one an add holds. How many went."""
        removed = 0
        for digest, path in list(self.scan()):
            if digest in used:
                continue
            with self.guard.lock:
                if digest in self.guard.pending:
                    continue
                try:
                    if digest not in known and path.stat().st_mtime > now - grace:
                        continue
                    path.unlink()
                    removed += 1
                except OSError:
                    continue
        return removed


# ======================================================================================
# Retention
# ======================================================================================


def retention_victims(
    versions: Sequence[tuple[int, float]], keep_last: int, keep_days: float, now: float
) -> list[int]:
    """The live versions (``(number, created_at)``) the policy retires, oldest first.

    A version is kept when it is among the ``keep_last`` newest or younger than
    ``keep_days`` days (a rule set to 0 is off; both off keeps everything). The newest
    version is always kept.
    """
    if not versions or (keep_last <= 0 and keep_days <= 0):
        return []
    ordered = sorted(versions, key=lambda v: v[0], reverse=True)
    victims = []
    for position, (number, created_at) in enumerate(ordered):
        if position == 0:
            continue
        recent = keep_days > 0 and created_at > now - keep_days * DAY
        among_last = keep_last > 0 and position < keep_last
        if not (recent or among_last):
            victims.append(number)
    return sorted(victims)


# ======================================================================================
# The SQL
# ======================================================================================


def _version(row: Row, store: str) -> VersionInfo:
    retired_at = row["retired_at"]
    return VersionInfo(
        asset=str(row["asset"]),
        number=int(row["number"]),
        store=store,
        size=int(row["size"]),
        chunks=int(row["chunks"]),
        unique_chunks=int(row["unique_chunks"]),
        new_chunks=int(row["new_chunks"]),
        new_bytes=int(row["new_bytes"]),
        digest=str(row["digest"]),
        index_digest=str(row["index_digest"]),
        index_path=str(row["index_path"]),
        created_at=float(row["created_at"]),
        retired=bool(row["retired"]),
        retired_at=float(retired_at) if retired_at is not None else None,
        metadata=msgspec.json.decode(str(row["metadata"] or "{}")),
    )


_VERSION_COLUMNS: Final = "v.*, a.store AS asset_store"


class CatalogueRows:
    """The catalogue's SQL over one connection or transaction (``$n`` placeholders,
    the same on SQLite and PostgreSQL)."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    async def asset(self, name: str) -> Row | None:
        return await self.db.fetchrow("SELECT * FROM storage_assets WHERE name = $1", name)

    async def assets(self) -> list[Row]:
        return await self.db.fetch("SELECT * FROM storage_assets ORDER BY name")

    async def versions(self, asset: str | None = None, live_only: bool = False) -> list[Row]:
        where, args = [], []
        if asset is not None:
            args.append(asset)
            where.append(f"v.asset = ${len(args)}")
        if live_only:
            where.append("v.retired = 0")
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return await self.db.fetch(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            f"JOIN storage_assets a ON a.name = v.asset {clause}ORDER BY v.asset, v.number",
            *args,
        )

    async def version(self, asset: str, number: int) -> Row | None:
        return await self.db.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            "JOIN storage_assets a ON a.name = v.asset WHERE v.asset = $1 AND v.number = $2",
            asset,
            number,
        )

    async def latest(self, asset: str) -> Row | None:
        return await self.db.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            "JOIN storage_assets a ON a.name = v.asset "
            "WHERE v.asset = $1 AND v.retired = 0 ORDER BY v.number DESC LIMIT 1",
            asset,
        )

    async def live_in_store(self, store: str) -> list[Row]:
        return await self.db.fetch(
            "SELECT v.asset, v.number, v.index_digest, v.size, v.chunks FROM storage_versions v "
            "JOIN storage_assets a ON a.name = v.asset "
            "WHERE a.store = $1 AND v.retired = 0 ORDER BY v.asset, v.number",
            store,
        )

    async def index_digests(self) -> tuple[set[str], set[str]]:
        """(digests live versions use, digests any version row names)."""
        rows = await self.db.fetch(
            "SELECT index_digest, MIN(retired) AS retired FROM storage_versions "
            "GROUP BY index_digest"
        )
        known = {str(r["index_digest"]) for r in rows}
        return {str(r["index_digest"]) for r in rows if not int(r["retired"])}, known

    async def create_asset(self, name: str, store: str, now: float) -> None:
        await self.db.execute(
            "INSERT INTO storage_assets (name, store, next_version, created_at, updated_at) "
            "VALUES ($1, $2, 1, $3, $3) ON CONFLICT (name) DO NOTHING",
            name,
            store,
            now,
        )

    async def take_number(self, name: str, now: float) -> tuple[int, str]:
        """The asset's next version number (taken) and its store; the row stays
        locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
        await self.db.execute(
            "UPDATE storage_assets SET next_version = next_version + 1, updated_at = $2 "
            "WHERE name = $1",
            name,
            now,
        )
        row = await self.db.fetchrow(
            "SELECT next_version, store FROM storage_assets WHERE name = $1", name
        )
        if row is None:
            raise UnknownAsset(f"no asset {name!r}")
        return int(row["next_version"]) - 1, str(row["store"])

    async def insert_version(self, values: Mapping[str, Any]) -> None:
        columns = list(values)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self.db.execute(
            f"INSERT INTO storage_versions ({', '.join(columns)}) VALUES ({placeholders})",
            *values.values(),
        )

    async def retire(self, asset: str, number: int, now: float) -> bool:
        status = await self.db.execute(
            "UPDATE storage_versions SET retired = 1, retired_at = $3 "
            "WHERE asset = $1 AND number = $2 AND retired = 0",
            asset,
            number,
            now,
        )
        return bool(affected(status))

    async def delete_asset(self, name: str) -> int:
        status = await self.db.execute("DELETE FROM storage_versions WHERE asset = $1", name)
        deleted = affected(status)
        await self.db.execute("DELETE FROM storage_assets WHERE name = $1", name)
        return deleted

    async def candidates(self, store: str) -> dict[str, float]:
        rows = await self.db.fetch(
            "SELECT chunk_id, first_seen FROM storage_gc_candidates WHERE store = $1", store
        )
        return {str(r["chunk_id"]): float(r["first_seen"]) for r in rows}

    async def add_candidates(self, store: str, chunk_ids: Iterable[str], now: float) -> None:
        rows = [(store, chunk_id, now) for chunk_id in chunk_ids]
        if rows:
            await self.db.executemany(
                "INSERT INTO storage_gc_candidates (store, chunk_id, first_seen) "
                "VALUES ($1, $2, $3) ON CONFLICT (store, chunk_id) DO NOTHING",
                rows,
            )

    async def drop_candidates(self, store: str, chunk_ids: Iterable[str]) -> None:
        rows = [(store, chunk_id) for chunk_id in chunk_ids]
        if rows:
            await self.db.executemany(
                "DELETE FROM storage_gc_candidates WHERE store = $1 AND chunk_id = $2", rows
            )


def _version_row(row: Row) -> VersionInfo:
    return _version(row, str(row["asset_store"]))


# ======================================================================================
# The catalogue
# ======================================================================================


def _check_source(path: str) -> Path:
    source = Path(path)
    if not source.is_absolute():
        raise ValueError(f"the source path must be absolute (a path on the node): {path!r}")
    if source.is_dir():
        raise StorageError(f"{path} is a directory; an asset version is made from a file")
    if not source.exists():
        raise StorageError(f"{path}: no such file on the node")
    return source


def _check_target(path: str) -> Path:
    target = Path(path)
    if not target.is_absolute():
        raise ValueError(f"the target path must be absolute (a path on the node): {path!r}")
    if target.is_dir():
        raise StorageError(f"{path} is a directory; name the file to write")
    if not target.parent.is_dir():
        raise StorageError(f"{target.parent}: no such directory on the node")
    return target


def _metadata_text(metadata: Mapping[str, Any] | None) -> str:
    if not metadata:
        return "{}"
    try:
        text = msgspec.json.encode(dict(metadata)).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"metadata must be JSON (str keys, JSON values): {exc}") from None
    if len(text) > METADATA_LIMIT:
        raise ValueError(f"metadata is {len(text)} bytes of JSON; the limit is {METADATA_LIMIT}")
    return text


def _label(asset: str, number: int) -> str:
    return f"asset {asset!r} version {number}"


def _read_live(files: IndexFiles, rows: Sequence[Row]) -> tuple[dict[str, Index], dict[str, str]]:
    """The indexes of ``rows`` by digest, and the errors of those that cannot be read
    (``asset@N`` → message)."""
    indexes: dict[str, Index] = {}
    errors: dict[str, str] = {}
    for row in rows:
        digest = str(row["index_digest"])
        if digest in indexes:
            continue
        try:
            indexes[digest] = files.read(digest, _label(str(row["asset"]), int(row["number"])))
        except InvalidIndex as exc:
            errors[f"{row['asset']}@{row['number']}"] = str(exc)
    return indexes, errors


def _check_chunk(store: Store, chunk_id: ChunkId, digest: str) -> tuple[ChunkId, str]:
    try:
        open_chunk(store.get(chunk_id), chunk_id, digest)
    except ChunkMissing:
        return chunk_id, "missing"
    except CorruptChunk:
        return chunk_id, "corrupt"
    return chunk_id, "ok"


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
            versions.setdefault(str(row["asset"]), []).append(_version_row(row))
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
        return [_version_row(row) for row in rows]

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
        return _version_row(row)

    async def live_version(self, asset: str, number: int = 0) -> VersionInfo:
        """As :meth:`version`, refusing a retired one (:class:`VersionRetired`)."""
        info = await self.version(asset, number)
        if info.retired:
            raise VersionRetired(
                f"{_label(asset, info.number)} was retired; its chunks may be gone"
            )
        return info

    async def index(self, asset: str, number: int = 0) -> tuple[VersionInfo, Index]:
        """A live version and its index (read and checked against its digest).

        Raises:
            UnknownAsset, UnknownVersion, VersionRetired, InvalidName,
            InvalidIndex: the index file is missing or damaged.
        """
        info = await self.live_version(asset, number)
        index = await run_blocking(self.files.read, info.index_digest, _label(asset, info.number))
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

    async def add_version(
        self,
        asset: str,
        path: str,
        store_name: str,
        store: Store,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[VersionInfo, MakeStats]:
        """Make the file ``path`` (on the node) into ``store`` and record it as the
        next version of ``asset`` (created in ``store_name`` if new).

        Raises:
            InvalidName, ValueError (a relative path, bad metadata), AssetConflict,
            StorageError (the file cannot be read, the store fails), DatabaseError.
        """
        check_asset_name(asset)
        source = _check_source(path)
        metadata_text = _metadata_text(metadata)
        settings = self.settings

        def build() -> tuple[Index, MakeStats, str]:
            index, stats = make(
                source,
                store,
                params=settings.chunker,
                digest=settings.digest,
                level=settings.compression_level,
                workers=settings.make_workers,
            )
            return index, stats, self.files.write(index)

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
                await rows.insert_version(
                    {
                        "asset": asset,
                        "number": number,
                        "index_digest": digest,
                        "index_path": index_relpath(digest),
                        "size": index.blob_size,
                        "chunks": stats.chunks,
                        "unique_chunks": stats.unique_chunks,
                        "new_chunks": stats.new_chunks,
                        "new_bytes": stats.bytes_stored,
                        "digest": settings.digest,
                        "metadata": metadata_text,
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

        Raises:
            UnknownAsset, UnknownVersion, VersionRetired, InvalidName, ValueError,
            InvalidIndex, ChunkMissing, CorruptChunk, StorageError.
        """
        destination = _check_target(target)
        for seed in seeds:
            if not Path(seed).is_absolute():
                raise ValueError(f"seed paths must be absolute: {seed!r}")
        info, index = await self.index(asset, number)
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

    # -- retiring and deleting -------------------------------------------------------------

    async def retire(self, asset: str, numbers: Sequence[int]) -> list[RetiredVersion]:
        """Retire versions of ``asset`` explicitly (never its newest live one).

        Raises:
            UnknownAsset, UnknownVersion, AssetConflict (the newest), InvalidName.
        """
        await self._require_asset(asset)
        live = await self.rows.versions(asset, live_only=True)
        newest = max((int(r["number"]) for r in live), default=0)
        wanted = sorted(set(numbers))
        for number in wanted:
            if await self.rows.version(asset, number) is None:
                raise UnknownVersion(f"asset {asset!r} has no version {number}")
            if number == newest:
                raise AssetConflict(
                    f"version {number} is the newest of asset {asset!r} and cannot be "
                    "retired (delete the asset to drop it all)"
                )
        now = self.clock()
        done = []
        async with self.db.transaction() as tx:
            rows = CatalogueRows(tx)
            for number in wanted:
                if await rows.retire(asset, number, now):
                    done.append(RetiredVersion(asset, number, "explicit"))
        return done

    async def apply_retention(self, asset: str | None = None) -> list[RetiredVersion]:
        """Retire what the retention policy says, for one asset or all."""
        if asset is not None:
            await self._require_asset(asset)
        settings = self.settings
        now = self.clock()
        by_asset: dict[str, list[tuple[int, float]]] = {}
        for row in await self.rows.versions(asset, live_only=True):
            by_asset.setdefault(str(row["asset"]), []).append(
                (int(row["number"]), float(row["created_at"]))
            )
        done = []
        for name, versions in sorted(by_asset.items()):
            victims = retention_victims(versions, settings.keep_last, settings.keep_days, now)
            if not victims:
                continue
            async with self.db.transaction() as tx:
                rows = CatalogueRows(tx)
                for number in victims:
                    if await rows.retire(name, number, now):
                        done.append(RetiredVersion(name, number, "policy"))
        return done

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
        every = [_version_row(r) for r in await self.rows.versions(asset)]
        live = [v for v in every if not v.retired]

        def count() -> tuple[int, int, int]:
            unique: set[bytes] = set()
            for version in live:
                unique |= self.files.read(
                    version.index_digest, _label(asset, version.number)
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
        )

    # -- garbage collection ----------------------------------------------------------------

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
        """Remove the chunks of ``store`` no live version uses, once unreferenced for
        ``grace`` seconds. Hold the store's lock exclusively around it. The live
        versions of the stores ``also`` (those ``store`` caches) count as its own.

        A live index that cannot be read stops the collection (``error``): nothing is
        removed when it is unknown what is in use.
        """
        cancel = cancel or threading.Event()
        live = []
        for name in [store_name, *also]:
            live += await self.rows.live_in_store(name)
        indexes, errors = await run_blocking(_read_live, self.files, live)
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
        now = self.clock()
        known = await self.rows.candidates(store_name)
        due = sorted(c for c in unreferenced if known.get(c, now) <= now - grace)
        removed = 0
        removed_indexes = 0
        if not dry_run:
            await self.rows.add_candidates(store_name, unreferenced - known.keys(), now)
            await self.rows.drop_candidates(store_name, known.keys() - unreferenced)

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
            await self.rows.drop_candidates(store_name, gone)
            used, named = await self.rows.index_digests()
            removed_indexes = await run_blocking(self.files.remove_unused, used, grace, now, named)
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

    # -- integrity -------------------------------------------------------------------------

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
        chosen at random, or all (``None``). ``repair`` removes corrupt ones."""
        cancel = cancel or threading.Event()
        live = await self.rows.live_in_store(store_name)
        indexes, errors = await run_blocking(_read_live, self.files, live)
        workers = self.settings.make_workers
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
                    pool.submit(_check_chunk, store, ChunkId(raw), digests[raw])
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
