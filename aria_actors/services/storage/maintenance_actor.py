"""``aria_storage.maintenance``: integrity checks and garbage collection, on timers
and on request. Checks hold a store's :class:`~.locks.StoreLock` shared, the
collector holds it exclusively (and those of the stores it caches), so it never
prunes a store while a make writes into it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from typing import Any

from ..._runtime.actor import handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import AriaError
from ..._runtime.messages import ExitReason
from .catalogue_actor import open_catalogue
from .catalogue_errors import UnknownStore
from .collector import GcReport
from .errors import StorageError
from .integrity import IntegrityReport
from .locks import coordination
from .messages import CheckIntegrity, CollectGarbage, GcResult, GcTick, IntegrityTick, StoreStats
from .metrics import MeasuredStore, Metrics
from .names import store_actor_name
from .request_actor import EXPECTED, RequestActor
from .settings import SERVICE, load_settings
from .store_actor import store_handle
from .stores.base import Store


class MaintenanceActor(RequestActor):
    """``aria_storage.maintenance``: integrity checks and garbage collection, on
    timers (``integrity_interval``, ``gc_interval``) and on request."""

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.metrics = Metrics(self.node)
        self._start_requests(self.metrics)
        self.catalogue = await open_catalogue(self.node, self.settings, migrate=False)
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

        task = self.start_task(run())
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
