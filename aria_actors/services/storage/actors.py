"""aria_storage's actor shell: a store actor per configured store, the catalogue and
the maintenance actor (see ``supervisors/aria_storage.toml``)::

    aria_storage (rest_for_one)
    ├── stores      dynamic supervisor: aria_storage.store.<name>, one StoreActor per store,
    │               and aria_storage.server.<name>, a ChunkServerActor per served store
    │               (server_actor.py)
    ├── registry    StoreRegistry: starts the store actors at boot, lists the stores
    ├── catalogue   CatalogueActor: assets and versions (aria_data), adds and fetches
    └── maintenance MaintenanceActor: integrity checks and garbage collection on timers

Each :class:`StoreActor` opens and owns one :class:`~.stores.base.Store` (through
:func:`open_configured`, which goes to ``stores/chain.py``'s ``open_store``), wrapped
in a :class:`MeasuredStore` that times every call per store and operation. Chunk
messages (has/get/put) are served from tasks, their blocking calls in worker threads.
Makes and extractions need the store in their own worker threads: they ask for it
with :class:`GetStore` and call it directly.

Long operations never hold a mailbox: each request runs in a task answering later
(a deferred reply). Adds to one asset are serialized by a per-asset lock; at most
``max_jobs`` adds and fetches run at once. Adds, fetches and integrity checks hold
their store's :class:`~.catalogue.StoreLock` shared, the garbage collector holds it
exclusively: it never prunes a store while a make writes into it. The locks live in a
per-node :class:`~.catalogue.Coordination`, so they outlive restarts of the actors.

Expected failures (bad requests, a damaged index, a store or the database down) go
back to the caller; anything else is a bug and crashes the actor, which its
supervisor restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram

from ..._runtime.actor import Actor, handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import AriaError, ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.node import Node
from ..._runtime.specs import ChildSpec
from ..._runtime.supervisor_api import SupervisorRef
from ..data.client import Data
from ..security.client import Secrets
from .catalogue import (
    MIGRATIONS,
    Catalogue,
    Coordination,
    GcReport,
    IndexFiles,
    IntegrityReport,
    UnknownAsset,
    UnknownStore,
)
from .chunks import open_chunk
from .errors import ChunkMissing, StorageError, StoreError
from .ids import ChunkId
from .messages import (
    AddVersion,
    AssetInfo,
    CheckIntegrity,
    CollectGarbage,
    DeleteAsset,
    FetchVersion,
    GcResult,
    GcTick,
    GetChunk,
    GetIndex,
    GetStore,
    GetVersion,
    HasChunk,
    IntegrityTick,
    ListAssets,
    ListStores,
    ListVersions,
    PutChunk,
    RetireVersions,
    StoreDescription,
    StoreStats,
    StoreStatus,
)
from .settings import SERVICE, StorageSettings, indexes_dir, load_settings, store_location
from .stores.base import Store

STORES_SUPERVISOR: Final = "aria_storage.stores"
REGISTRY: Final = "aria_storage.registry"
CATALOGUE: Final = "aria_storage.catalogue"
MAINTENANCE: Final = "aria_storage.maintenance"
EXPECTED: Final = (AriaError, ValueError, OSError)
"""What a request may fail with and still leave the actor running (AriaError covers
StorageError, DatabaseError, SecretsError, NoProcess, CallTimeout...)."""
STORE_CONCURRENCY: Final = 16
LATENCY_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


def store_actor_name(store: str) -> str:
    """The registered name of store ``store``'s actor."""
    return f"aria_storage.store.{store}"


_COORDINATION: weakref.WeakKeyDictionary[Node, Coordination] = weakref.WeakKeyDictionary()


def coordination(node: Node) -> Coordination:
    """The node's store locks and index guard (shared by the catalogue and maintenance)."""
    found = _COORDINATION.get(node)
    if found is None:
        found = _COORDINATION[node] = Coordination()
    return found


def _state_dir(node: Node) -> Path | None:
    return node.state_dir


# ======================================================================================
# Metrics
# ======================================================================================


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


# ======================================================================================
# Opening stores
# ======================================================================================


def _open_location(location: str, **options: Any) -> Store:
    """The store at ``location``: ``stores/chain.py``'s ``open_store`` (every scheme),
    or a local directory when that module is unavailable."""
    try:
        from .stores.chain import open_store
    except ImportError:  # pragma: no cover - a build without the network stores
        if "://" in location and not location.startswith("file://"):
            raise StoreError(
                f"{location!r}: this build opens local stores only", store=location
            ) from None
        from .stores.local import LocalStore

        return LocalStore(location.removeprefix("file://"), **options)
    return open_store(location, **options)


def open_configured(
    settings: StorageSettings,
    name: str,
    state_dir: Path | None,
    options: dict[str, dict[str, Any]],
) -> Store:
    """Open store ``name`` as configured (with its cache in front), blocking.

    ``options`` maps a store name to the keyword options of its store (its
    ``options`` and the fields of its ``credentials`` secret).

    Raises:
        ConfigError: the location cannot be opened, naming the key.
    """
    config = settings.stores[name]

    def one(store: str, writable: bool) -> Store:
        location = store_location(settings, store, state_dir)
        try:
            return _open_location(location, writable=writable, **options.get(store, {}))
        except TypeError as exc:
            raise ConfigError(f"services.{SERVICE}.stores.{store}.options: {exc}") from None
        except StorageError as exc:
            raise ConfigError(f"services.{SERVICE}.stores.{store}.location: {exc}") from None

    store = one(name, config.writable)
    if not config.cache:
        return store
    from .stores.chain import CacheStore

    try:
        cache = one(config.cache, settings.stores[config.cache].writable)
    except BaseException:
        store.close()
        raise
    return CacheStore(cache, store, digest=settings.digest)


async def store_options(node: Node, settings: StorageSettings, names: list[str]) -> dict[str, Any]:
    """The keyword options of each store in ``names``: its ``options``, plus the
    fields of its ``credentials`` secret from aria_security."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        config = settings.stores[name]
        options: dict[str, Any] = dict(config.options)
        if config.credentials:
            secret = await Secrets(node, caller=SERVICE).get(config.credentials)
            options.update(secret.data)
        out[name] = options
    return out


async def store_handle(node: Node, name: str, timeout: float = 10.0) -> Store:
    """Store ``name``'s (measured) Store, from its actor; waits while it restarts.

    Raises:
        UnknownStore: no actor for it (not configured).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ref = node.whereis(store_actor_name(name))
        if ref is not None:
            try:
                store: Store = await ref.call(GetStore(), timeout=timeout)
                return store
            except AriaError:  # NoProcess, ActorExited, CallTimeout: restarting
                pass
        if asyncio.get_running_loop().time() >= deadline:
            raise UnknownStore(f"no running store {name!r} (is it configured?)")
        await asyncio.sleep(0.05)


# ======================================================================================
# Requests in tasks
# ======================================================================================


class _Requests(Actor):
    """Answering calls from tasks of their own (a mixin of the actors below)."""

    def _start_requests(self, metrics: Metrics | None = None) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.metrics_ref = metrics

    def answer(self, op: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Answer the current call from a task: expected failures go back to the
        caller, anything else crashes the actor after failing the call."""
        reply = self.defer_reply()
        metrics = self.metrics_ref

        async def run() -> None:
            try:
                result = await work()
            except EXPECTED as exc:
                if metrics is not None:
                    metrics.operations.labels(op=op, outcome="error").inc()
                reply.fail(exc)
                return
            except Exception as exc:
                reply.fail(exc)
                self.stop(ExitReason.from_exception(exc))  # a bug: restart clean
                return
            if metrics is not None:
                metrics.operations.labels(op=op, outcome="ok").inc()
            reply.reply(result)

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish_tasks(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)
        for task in self.tasks:
            task.cancel()


# ======================================================================================
# The store actors and their registry
# ======================================================================================


class StoreActor(_Requests):
    """``aria_storage.store.<name>``: owns one configured store."""

    secret_fields = frozenset({"options"})

    async def init(self, store: str) -> None:
        settings = load_settings(self.node.service_settings(SERVICE))
        if store not in settings.stores:
            raise ConfigError(f"services.{SERVICE}.stores: no store {store!r} is configured")
        self.name = store
        self.digest = settings.digest
        self.metrics = Metrics(self.node)
        self._start_requests()
        names = [store] + ([settings.stores[store].cache] if settings.stores[store].cache else [])
        self.options = await store_options(self.node, settings, names)
        raw = await run_blocking(
            open_configured, settings, store, _state_dir(self.node), self.options
        )
        self.store = MeasuredStore(raw, store, self.metrics)
        self.limit = asyncio.Semaphore(STORE_CONCURRENCY)
        self.scan_lock = asyncio.Lock()
        self.status = StoreStatus(
            name=store,
            location=raw.location,
            writable=raw.writable,
            chunks=0,
            bytes=0,
            scanned_at=0.0,
        )
        self.log.info("store_opened", store=store, location=raw.location, writable=raw.writable)

    async def terminate(self, reason: ExitReason) -> None:
        await self._finish_tasks(5.0)
        with contextlib.suppress(Exception):
            await run_blocking(self.store.close)

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        async with self.limit:
            return await run_blocking(function, *args)

    @handles(GetStore)
    def get_store(self, message: GetStore) -> Store:
        return self.store

    @handles(HasChunk)
    def has_chunk(self, message: HasChunk) -> None:
        self.answer("has_chunk", lambda: self._has(message.chunk_id))

    async def _has(self, chunk_hex: str) -> bool:
        return bool(await self._blocking(self.store.has, ChunkId.from_hex(chunk_hex)))

    @handles(GetChunk)
    def get_chunk(self, message: GetChunk) -> None:
        async def work() -> bytes:
            chunk_id = ChunkId.from_hex(message.chunk_id)
            digest = message.digest or self.digest

            def read() -> bytes:
                blob = self.store.get(chunk_id)
                if message.verify:
                    open_chunk(blob, chunk_id, digest)
                return blob

            return bytes(await self._blocking(read))

        self.answer("get_chunk", work)

    @handles(PutChunk)
    def put_chunk(self, message: PutChunk) -> None:
        async def work() -> bool:
            chunk_id = ChunkId.from_hex(message.chunk_id)
            digest = message.digest or self.digest

            def write() -> bool:
                open_chunk(message.blob, chunk_id, digest)  # CorruptChunk: nothing written
                if self.store.has(chunk_id):
                    return False
                self.store.put(chunk_id, message.blob)
                return True

            return bool(await self._blocking(write))

        self.answer("put_chunk", work)

    @handles(StoreStats)
    def store_stats(self, message: StoreStats) -> None:
        async def work() -> StoreStatus:
            if message.refresh:
                async with self.scan_lock:
                    chunks, size = await self._blocking(self._scan)
                    self.status = StoreStatus(
                        name=self.status.name,
                        location=self.status.location,
                        writable=self.status.writable,
                        chunks=chunks,
                        bytes=size,
                        scanned_at=time.time(),
                    )
                    self.metrics.chunks.labels(store=self.name).set(chunks)
                    self.metrics.bytes_stored.labels(store=self.name).set(size)
            return self.status

        self.answer("store_stats", work)

    def _scan(self) -> tuple[int, int]:
        chunks = size = 0
        for chunk_id in self.store.ids():
            try:
                size += self.store.size(chunk_id)
            except ChunkMissing:
                continue  # removed meanwhile
            chunks += 1
        return chunks, size


class StoreRegistry(Actor):
    """``aria_storage.registry``: starts a :class:`StoreActor` per configured store
    under the ``stores`` dynamic supervisor, each followed by its
    :class:`~.server_actor.ChunkServerActor` when the store has a ``serve`` table
    (keeping those already running, stopping those no longer configured), and lists
    the stores (with their servers' URLs)."""

    async def init(self, supervisor: str = STORES_SUPERVISOR) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        ref = self.node.whereis(supervisor)
        if not isinstance(ref, SupervisorRef):
            raise ConfigError(
                f"{supervisor} is not a running supervisor; the registry starts the store "
                "actors under it (see supervisors/aria_storage.toml)"
            )
        from .server_actor import SHUTDOWN, ChunkServerActor, server_actor_name  # imports us

        children: list[ChildSpec] = []
        for name, config in self.settings.stores.items():
            children.append(
                ChildSpec(
                    id=f"store.{name}",
                    start=StoreActor,
                    args={"store": name},
                    name=store_actor_name(name),
                    shutdown=10.0,
                )
            )
            if config.serve is not None:
                children.append(
                    ChildSpec(
                        id=f"server.{name}",
                        start=ChunkServerActor,
                        args={"store": name},
                        name=server_actor_name(name),
                        shutdown=SHUTDOWN,
                    )
                )
        wanted = {child.name for child in children}
        for child in await ref.which_children():
            if child.actor is not None and child.actor.name not in wanted:
                await ref.terminate_child(child.actor)
        for spec in children:
            assert spec.name is not None
            running = self.node.whereis(spec.name)
            if running is not None and running.is_alive():
                continue
            await ref.start_child(spec)

    @handles(ListStores)
    def list_stores(self, message: ListStores) -> list[StoreDescription]:
        from .server_actor import served_url

        settings = self.settings
        return [
            StoreDescription(
                name=name,
                location=store_location(settings, name, _state_dir(self.node)),
                writable=config.writable,
                cache=config.cache,
                gc=config.gc,
                default=name == settings.default_store,
                served=config.serve is not None,
                url=served_url(self.node, name),
            )
            for name, config in settings.stores.items()
        ]


# ======================================================================================
# The catalogue
# ======================================================================================


async def _open_catalogue(node: Node, settings: StorageSettings, migrate: bool) -> Catalogue:
    data = Data(node)
    if migrate:
        await data.migrate(SERVICE, MIGRATIONS)
    root = indexes_dir(settings, _state_dir(node))
    try:
        await run_blocking(lambda: root.mkdir(parents=True, exist_ok=True))
    except OSError as exc:
        raise ConfigError(f"services.{SERVICE}.indexes: cannot create {root}: {exc}") from None
    return Catalogue(data.database(), IndexFiles(root, coordination(node).guard), settings)


class CatalogueActor(_Requests):
    """``aria_storage.catalogue``; see the module documentation."""

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.metrics = Metrics(self.node)
        self._start_requests(self.metrics)
        self.catalogue = await _open_catalogue(self.node, self.settings, migrate=True)
        self.coordination = coordination(self.node)
        self.jobs = asyncio.Semaphore(self.settings.max_jobs)
        self.asset_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def terminate(self, reason: ExitReason) -> None:
        await self._finish_tasks(10.0)

    @contextlib.asynccontextmanager
    async def _asset_lock(self, asset: str) -> AsyncIterator[None]:
        lock, users = self.asset_locks.get(asset, (asyncio.Lock(), 0))
        self.asset_locks[asset] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.asset_locks[asset]
            if users <= 1:
                del self.asset_locks[asset]
            else:
                self.asset_locks[asset] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def _job(self, op: str) -> AsyncIterator[None]:
        async with self.jobs:
            gauge = self.metrics.jobs.labels(op=op)
            gauge.inc()
            try:
                yield
            finally:
                gauge.dec()

    async def _store_of(self, asset: str) -> str:
        name = await self.catalogue.asset_store(asset)
        if name is None:
            raise UnknownAsset(f"no asset {asset!r}")
        return name

    async def _handle(self, name: str) -> Store:
        if name not in self.settings.stores:
            raise UnknownStore(
                f"store {name!r} is not configured (any more): add "
                f"[services.{SERVICE}.stores.{name}] back to reach its assets"
            )
        return await store_handle(self.node, name)

    @handles(AddVersion)
    def add_version(self, message: AddVersion) -> None:
        async def work() -> Any:
            catalogue = self.catalogue
            async with self._asset_lock(message.asset):
                name = await catalogue.resolve_store(message.asset, message.store)
                async with self._job("add"):
                    store = await self._handle(name)
                    async with self.coordination.lock(name).shared():
                        info, stats = await catalogue.add_version(
                            message.asset, message.path, name, store, message.metadata
                        )
            m = self.metrics
            m.ingested_bytes.labels(store=name).inc(stats.bytes_in)
            m.ingested_chunks.labels(store=name).inc(stats.chunks)
            m.new_chunks.labels(store=name).inc(stats.new_chunks)
            m.new_bytes.labels(store=name).inc(stats.bytes_stored)
            m.chunks.labels(store=name).inc(stats.new_chunks)  # exact again at the next scan
            m.bytes_stored.labels(store=name).inc(stats.bytes_stored)
            self.log.info(
                "version_added",
                asset=info.asset,
                version=info.number,
                store=name,
                size=info.size,
                chunks=info.chunks,
                new_chunks=info.new_chunks,
            )
            return info

        self.answer("add_version", work)

    @handles(ListAssets)
    def list_assets(self, message: ListAssets) -> None:
        self.answer("list_assets", self.catalogue.assets)

    @handles(ListVersions)
    def list_versions(self, message: ListVersions) -> None:
        self.answer(
            "list_versions",
            lambda: self.catalogue.versions(message.asset, message.include_retired),
        )

    @handles(GetVersion)
    def get_version(self, message: GetVersion) -> None:
        self.answer("get_version", lambda: self.catalogue.version(message.asset, message.version))

    @handles(GetIndex)
    def get_index(self, message: GetIndex) -> None:
        async def work() -> Any:
            _, index = await self.catalogue.index(message.asset, message.version)
            return index

        self.answer("get_index", work)

    @handles(FetchVersion)
    def fetch_version(self, message: FetchVersion) -> None:
        async def work() -> Any:
            name = await self._store_of(message.asset)
            async with self._job("fetch"):
                store = await self._handle(name)
                async with self.coordination.lock(name).shared():
                    return await self.catalogue.fetch(
                        message.asset, message.version, message.target, store, message.seeds
                    )

        self.answer("fetch_version", work)

    @handles(RetireVersions)
    def retire_versions(self, message: RetireVersions) -> None:
        async def work() -> Any:
            if message.versions:
                if not message.asset:
                    raise ValueError("retiring versions by number needs the asset")
                done = await self.catalogue.retire(message.asset, message.versions)
            else:
                done = await self.catalogue.apply_retention(message.asset or None)
            for item in done:
                self.metrics.retired.labels(reason=item.reason).inc()
            if done:
                self.log.info("versions_retired", versions=[f"{v.asset}@{v.number}" for v in done])
            return done

        self.answer("retire_versions", work)

    @handles(DeleteAsset)
    def delete_asset(self, message: DeleteAsset) -> None:
        async def work() -> int:
            async with self._asset_lock(message.asset):
                deleted = await self.catalogue.delete_asset(message.asset)
            self.log.info("asset_deleted", asset=message.asset, versions=deleted)
            return deleted

        self.answer("delete_asset", work)

    @handles(AssetInfo)
    def asset_info(self, message: AssetInfo) -> None:
        async def work() -> Any:
            name = await self._store_of(message.asset)
            async with self._job("info"):
                store = await self._handle(name)
                return await self.catalogue.details(message.asset, store)

        self.answer("asset_info", work)


# ======================================================================================
# Maintenance
# ======================================================================================


class MaintenanceActor(_Requests):
    """``aria_storage.maintenance``: integrity checks and garbage collection, on
    timers (``integrity_interval``, ``gc_interval``) and on request."""

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.metrics = Metrics(self.node)
        self._start_requests(self.metrics)
        self.catalogue = await _open_catalogue(self.node, self.settings, migrate=False)
        self.coordination = coordination(self.node)
        self.gc_lock = asyncio.Lock()
        self.check_lock = asyncio.Lock()
        self.cancel = threading.Event()
        if self.settings.integrity_interval:
            self.send_after(self.settings.integrity_interval, IntegrityTick())
        if self.settings.gc_interval:
            self.send_after(self.settings.gc_interval, GcTick())

    async def terminate(self, reason: ExitReason) -> None:
        self.cancel.set()  # running sweeps stop between two chunks
        await self._finish_tasks(10.0)

    def _stores(self, store: str) -> list[str]:
        if not store:
            return list(self.settings.stores)
        if store not in self.settings.stores:
            raise UnknownStore(
                f"no store {store!r} (known: {', '.join(sorted(self.settings.stores))})"
            )
        return [store]

    # -- integrity -------------------------------------------------------------------------

    @handles(CheckIntegrity)
    def check_integrity(self, message: CheckIntegrity) -> None:
        stores = self._stores_or_fail(message.store)
        if stores is None:
            return
        repair = self.settings.repair if message.repair is None else message.repair
        sample = None if message.full else self.settings.integrity_sample
        self.answer("check_integrity", lambda: self._check(stores, sample, repair))

    def _stores_or_fail(self, store: str) -> list[str] | None:
        try:
            return self._stores(store)
        except UnknownStore as exc:
            self.defer_reply().fail(exc)
            return None

    @handles(IntegrityTick)
    def integrity_tick(self, message: IntegrityTick) -> None:
        self.send_after(self.settings.integrity_interval, IntegrityTick())
        if self.check_lock.locked():
            return
        self._background(
            "check_integrity",
            self._check(list(self.settings.stores), self.settings.integrity_sample, None),
        )

    def _background(self, op: str, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except EXPECTED as exc:
                self.metrics.operations.labels(op=op, outcome="error").inc()
                self.log.warning(f"{op}_failed", error=str(exc))

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _check(
        self, stores: list[str], sample: int | None, repair: bool | None
    ) -> list[IntegrityReport]:
        if repair is None:
            repair = self.settings.repair
        reports = []
        async with self.check_lock:
            for name in stores:
                store = await store_handle(self.node, name)
                async with self.coordination.lock(name).shared():
                    report = await self.catalogue.check_integrity(
                        name, store, sample=sample, repair=repair, cancel=self.cancel
                    )
                self._record_check(report)
                reports.append(report)
        return reports

    def _record_check(self, report: IntegrityReport) -> None:
        m = self.metrics
        m.integrity_checked.labels(store=report.store).inc(report.checked)
        for kind, found in (
            ("missing", report.missing),
            ("corrupt", report.corrupt),
            ("index", report.bad_indexes),
        ):
            if found:
                m.integrity_failures.labels(store=report.store, kind=kind).inc(len(found))
        if report.ok:
            self.log.info("integrity_checked", store=report.store, checked=report.checked, ok=True)
            return
        self.log.error(
            "integrity_failures",
            store=report.store,
            checked=report.checked,
            missing=report.missing,
            corrupt=report.corrupt,
            removed=report.removed,
            bad_indexes=report.bad_indexes,
            affected=report.affected,
        )

    # -- garbage collection ----------------------------------------------------------------

    @handles(CollectGarbage)
    def collect_garbage(self, message: CollectGarbage) -> None:
        stores = self._stores_or_fail(message.store)
        if stores is None:
            return
        self.answer(
            "collect_garbage",
            lambda: self._collect(stores, dry_run=message.dry_run, retention=message.retention),
        )

    @handles(GcTick)
    def gc_tick(self, message: GcTick) -> None:
        self.send_after(self.settings.gc_interval, GcTick())
        if self.gc_lock.locked():
            return
        self._background("collect_garbage", self._collect(list(self.settings.stores)))

    async def _collect(
        self, stores: list[str], dry_run: bool = False, retention: bool = True
    ) -> GcResult:
        settings = self.settings
        async with self.gc_lock:
            retired = []
            if retention and not dry_run:
                retired = await self.catalogue.apply_retention()
                for item in retired:
                    self.metrics.retired.labels(reason=item.reason).inc()
                if retired:
                    self.log.info(
                        "versions_retired", versions=[f"{v.asset}@{v.number}" for v in retired]
                    )
            reports = []
            for name in stores:
                config = settings.stores[name]
                if not config.gc:
                    reports.append(GcReport(store=name, dry_run=dry_run, skipped="gc = false"))
                    continue
                if not config.writable:
                    reports.append(GcReport(store=name, dry_run=dry_run, skipped="read-only"))
                    continue
                reports.append(await self._collect_one(name, dry_run))
        return GcResult(retired=retired, stores=reports)

    async def _collect_one(self, name: str, dry_run: bool) -> GcReport:
        # a store that caches others holds their chunks too: keep those of their live
        # versions, and hold their locks (their adds write through to it)
        users = sorted(n for n, c in self.settings.stores.items() if c.cache == name)
        try:
            store = await store_handle(self.node, name)
            async with contextlib.AsyncExitStack() as locks:
                for locked in sorted([name, *users]):
                    await locks.enter_async_context(self.coordination.lock(locked).exclusive())
                report = await self.catalogue.collect_garbage(
                    name,
                    store,
                    grace=self.settings.gc_grace,
                    dry_run=dry_run,
                    cancel=self.cancel,
                    also=users,
                )
        except StorageError as exc:
            report = GcReport(store=name, dry_run=dry_run, error=str(exc))
        m = self.metrics
        if report.error:
            self.log.error("gc_failed", store=name, error=report.error)
            return report
        m.live_chunks.labels(store=name).set(report.referenced)
        m.dedup_ratio.labels(store=name).set(
            report.chunk_refs / report.referenced if report.referenced else 1.0
        )
        if not dry_run:
            m.gc_removed.labels(store=name).inc(report.removed)
            m.gc_removed_indexes.inc(report.removed_indexes)
            await self._sweep_temporaries(store)
            ref = self.node.whereis(store_actor_name(name))
            if ref is not None:
                with contextlib.suppress(AriaError):
                    await ref.call(StoreStats(refresh=True), timeout=600.0)
        self.log.info(
            "gc_done",
            store=name,
            live_versions=report.live_versions,
            referenced=report.referenced,
            unreferenced=report.unreferenced,
            removed=report.removed,
            deferred=report.deferred,
            removed_indexes=report.removed_indexes,
            dry_run=dry_run,
        )
        return report

    async def _sweep_temporaries(self, store: Store) -> None:
        """Remove what interrupted writes left in a local store (older than the grace)."""
        from .stores.local import LocalStore

        inner = store.inner if isinstance(store, MeasuredStore) else store
        if isinstance(inner, LocalStore):
            older = max(self.settings.gc_grace, 3600.0)
            with contextlib.suppress(OSError):
                await run_blocking(inner.sweep_temporaries, older)
