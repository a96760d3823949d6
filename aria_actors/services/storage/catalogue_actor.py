"""``aria_storage.catalogue``: assets and versions (aria_data), adds and fetches.

Each request runs in a task answering later. Adds to one asset are serialized by a
per-asset lock; at most ``max_jobs`` adds and fetches run at once. Adds and fetches
hold their store's :class:`~.locks.StoreLock` shared (the garbage collector holds it
exclusively), in the node's :class:`~.locks.Coordination`, which outlives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..._runtime.actor import handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.node import Node
from ..data.client import Data
from .catalogue import MIGRATIONS, Catalogue
from .catalogue_errors import UnknownAsset, UnknownStore
from .index_files import IndexFiles
from .locks import coordination
from .messages import (
    AddVersion,
    AssetInfo,
    DeleteAsset,
    FetchVersion,
    GetIndex,
    GetVersion,
    ListAssets,
    ListVersions,
    RetireVersions,
)
from .metrics import Metrics
from .request_actor import RequestActor
from .settings import SERVICE, StorageSettings, indexes_dir, load_settings
from .store_actor import store_handle
from .stores.base import Store


async def open_catalogue(node: Node, settings: StorageSettings, migrate: bool) -> Catalogue:
    data = Data(node)
    if migrate:
        await data.migrate(SERVICE, MIGRATIONS)
    root = indexes_dir(settings, node.state_dir)
    try:
        await run_blocking(lambda: root.mkdir(parents=True, exist_ok=True))
    except OSError as exc:
        raise ConfigError(f"services.{SERVICE}.indexes: cannot create {root}: {exc}") from None
    return Catalogue(data.database(), IndexFiles(root, coordination(node).guard), settings)


class CatalogueActor(RequestActor):
    """``aria_storage.catalogue``; see the module documentation."""

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.metrics = Metrics(self.node)
        self._start_requests(self.metrics)
        self.catalogue = await open_catalogue(self.node, self.settings, migrate=True)
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
                            message.asset,
                            message.path,
                            name,
                            store,
                            message.metadata,
                            with_=message.with_,
                            without=message.without,
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
                kind=info.kind,
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
