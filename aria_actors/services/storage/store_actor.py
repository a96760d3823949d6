"""The store actors: ``aria_storage.store.<name>``, one per configured store.

Each :class:`StoreActor` opens and owns one :class:`~.stores.base.Store` (through
:func:`open_configured`, which goes to ``stores/chain.py``'s ``open_store``), wrapped
in a :class:`~.metrics.MeasuredStore` that times every call per store and operation.
Chunk messages (has/get/put) are served from tasks, their blocking calls in worker
threads. Makes and extractions need the store in their own worker threads: they ask
for it with :class:`~.messages.GetStore` (:func:`store_handle`) and call it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..._runtime.actor import handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import AriaError, ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.node import Node
from ..security.client import Secrets
from .catalogue_errors import UnknownStore
from .chunks import open_chunk
from .errors import ChunkMissing, StorageError, StoreError
from .ids import ChunkId
from .messages import GetChunk, GetStore, HasChunk, PutChunk, StoreStats, StoreStatus
from .metrics import MeasuredStore, Metrics
from .names import store_actor_name
from .request_actor import RequestActor
from .settings import SERVICE, StorageSettings, load_settings, store_location
from .stores.base import Store

STORE_CONCURRENCY: Final = 16


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


class StoreActor(RequestActor):
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
            open_configured, settings, store, self.node.state_dir, self.options
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
