"""aria_security's actor shell: the secrets actor that owns the backend and the audit log.

Every request is audited (who, what, which path and version, the outcome; never
the value) and answered from a task of its own, at most ``max_concurrency`` at a
time for OpenBao, so one slow request does not hold the others up while the actor
keeps taking messages. Watchers hear of every change under their prefix.

Health: the backend is probed every ``health_interval`` seconds; while it fails,
with a capped exponential backoff (0.5 s doubling to ``max_backoff``). Requests
are still tried while it is down (each fails with ``SecretsUnavailable``: nothing
is cached, nothing stale is served) and the service recovers by itself when the
backend comes back. Transitions are logged (``secrets_degraded``,
``secrets_recovered``) and exported as ``aria_security_backend_up``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from prometheus_client import Counter, Gauge

from ..._runtime.actor import Actor, DeferredReply, handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import ConfigError, MailboxFull
from ..._runtime.messages import Down, ExitReason
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from .api import (
    DataKeys,
    SecretsError,
    SecretsSealed,
    SecretStore,
    SecretsUnavailable,
    StoreHealth,
)
from .audit import AuditLog, verify
from .embedded import EmbeddedStore
from .masterkey import FileMasterKey, MasterKey, Pkcs11MasterKey
from .messages import (
    DeleteSecret,
    DestroyVersions,
    GetSecret,
    ListSecrets,
    NewDataKey,
    Probe,
    PutSecret,
    SecretChanged,
    SecretInfo,
    SecurityHealth,
    UnwatchSecrets,
    UnwrapDataKey,
    VerifyAudit,
    WatchSecrets,
)
from .openbao import OpenBaoStore
from .settings import SERVICE, SecuritySettings, environ, load_settings

FIRST_BACKOFF: Final = 0.5
STORE_FILE: Final = "secrets.enc"
AUDIT_FILE: Final = "audit.log"


def state_dir(node: Node) -> Path:
    """The node's state directory.

    Raises:
        ConfigError: the node has none (``Node(state_dir=...)``; the daemon sets it).
    """
    if node.state_dir is None:
        raise ConfigError(
            f"{SERVICE} keeps its files in the node's state directory, and this node has "
            "none: start it with aria-node, or build it with Node(state_dir=...)"
        )
    return node.state_dir


def master_key(settings: SecuritySettings, state: Path) -> MasterKey:
    """Where the embedded store's master key comes from (a file, or a PKCS#11 token)."""
    if settings.master_key == "pkcs11":
        pkcs11 = settings.pkcs11
        return Pkcs11MasterKey(
            module=pkcs11.module,
            token_label=pkcs11.token,
            pin=pkcs11.pin(environ()),
            key_label=pkcs11.key_label,
            wrapped_path=state / "master.key.wrapped",
        )
    return FileMasterKey(state / "master.key")


async def open_store(settings: SecuritySettings, state: Path) -> SecretStore:
    """The configured backend, opened (an embedded store is read and decrypted here).

    Raises:
        StoreCorrupt: the embedded file does not decrypt (it is left untouched).
        SecretsError: the master key cannot be had (a bad key file, the token).
    """
    if settings.backend == "openbao":
        return OpenBaoStore(settings.openbao)
    key = await run_blocking(master_key(settings, state).load)
    store = EmbeddedStore(state / STORE_FILE, key, max_versions=settings.max_versions)
    await store.open()
    return store


class SecretsActor(Actor):
    """The ``aria_security.secrets`` actor; see the module documentation."""

    secret_fields = frozenset({"store"})

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        state = state_dir(self.node)
        self.store: SecretStore = await open_store(self.settings, state)
        self.audit = AuditLog(state / AUDIT_FILE) if self.settings.audit else None
        self.watchers: dict[ActorRef, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.health = StoreHealth(backend=self.store.backend, ok=True, detail="not probed yet")
        self.backoff = FIRST_BACKOFF
        self.up = self.node.metric(
            Gauge, "aria_security_backend_up", "1 while the secrets backend answers."
        )
        self.operations = self.node.metric(
            Counter,
            "aria_security_operations",
            "Secret operations by kind and outcome.",
            labelnames=["op", "outcome"],
        )
        self.up.set(1)
        self.send_after(0, Probe())

    async def terminate(self, reason: ExitReason) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=2.0)
        await self.store.close()
        if self.audit is not None:
            await self.audit.close()

    # -- running requests -----------------------------------------------------------------

    def start(
        self,
        caller: str,
        op: str,
        path: str | None,
        work: Callable[[], Awaitable[Any]],
        version: int | None = None,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        """Answer the current call from a task: audit, then reply or fail."""
        reply = self.defer_reply()
        task = self.start_task(self.run(reply, caller or "unknown", op, path, work, version, after))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(
        self,
        reply: DeferredReply,
        caller: str,
        op: str,
        path: str | None,
        work: Callable[[], Awaitable[Any]],
        version: int | None,
        after: Callable[[Any], None] | None,
    ) -> None:
        """Do the work, audit it, answer. An operation that cannot be audited is not
        answered with its result: the caller gets the audit log's error instead."""
        try:
            result = await work()
        except (SecretsError, ValueError, TypeError) as exc:
            if isinstance(exc, SecretsUnavailable | SecretsSealed):
                self.degraded(str(exc))
            await self.answer(reply, caller, op, path, version, type(exc).__name__, error=exc)
            return
        except Exception as exc:
            await self.answer(reply, caller, op, path, version, type(exc).__name__, error=exc)
            self.stop(ExitReason.from_exception(exc))  # a bug: let it crash, restart clean
            return
        audited = result if op in ("put", "rotate") else version
        if await self.answer(reply, caller, op, path, audited, "ok", result=result) and after:
            after(result)

    async def answer(
        self,
        reply: DeferredReply,
        caller: str,
        op: str,
        path: str | None,
        version: object,
        outcome: str,
        result: object = None,
        error: BaseException | None = None,
    ) -> bool:
        """Audit, then reply (or fail); False when the audit log refused the record."""
        try:
            await self.record(caller, op, path, version, outcome)
        except SecretsError as exc:
            self.log.error("audit_failed", op=op, path=path, error=str(exc))
            reply.fail(exc)
            return False
        if error is not None:
            reply.fail(error)
        else:
            reply.reply(result)
        return error is None

    async def record(
        self, caller: str, op: str, path: str | None, version: object, outcome: str
    ) -> None:
        self.operations.labels(op=op, outcome=outcome).inc()
        if self.audit is not None:
            await self.audit.record(
                caller, op, path, version if isinstance(version, int) else None, outcome
            )

    def notify(self, change: SecretChanged) -> None:
        for watcher, prefix in list(self.watchers.items()):
            if prefix and not (
                change.path == prefix.rstrip("/")
                or change.path.startswith(prefix if prefix.endswith("/") else prefix + "/")
            ):
                continue
            try:
                watcher.cast_nowait(change)
            except MailboxFull:
                self.log.warning("watcher_mailbox_full", watcher=repr(watcher), path=change.path)

    # -- the API --------------------------------------------------------------------------

    @handles(GetSecret)
    def get(self, message: GetSecret) -> None:
        self.start(
            message.caller,
            "get",
            message.path,
            lambda: self.store.get(message.path, message.version),
            message.version,
        )

    @handles(PutSecret)
    def put(self, message: PutSecret) -> None:
        def changed(version: int) -> None:
            if message.rotation_grace is not None:
                previous = version - 1 if version > 1 else None
                self.notify(
                    SecretChanged(
                        message.path,
                        "rotate",
                        version,
                        previous,
                        time.time() + message.rotation_grace if previous else None,
                    )
                )
            else:
                self.notify(SecretChanged(message.path, "put", version))

        self.start(
            message.caller,
            "rotate" if message.rotation_grace is not None else "put",
            message.path,
            lambda: self.store.put(message.path, message.data, message.cas),
            after=changed,
        )

    @handles(DeleteSecret)
    def delete(self, message: DeleteSecret) -> None:
        self.start(
            message.caller,
            "delete",
            message.path,
            lambda: self.store.delete(message.path),
            after=lambda _: self.notify(SecretChanged(message.path, "delete")),
        )

    @handles(DestroyVersions)
    def destroy(self, message: DestroyVersions) -> None:
        self.start(
            message.caller,
            "destroy",
            message.path,
            lambda: self.store.destroy_versions(message.path, message.versions),
            after=lambda _: self.notify(SecretChanged(message.path, "destroy")),
        )

    @handles(ListSecrets)
    def list(self, message: ListSecrets) -> None:
        self.start(message.caller, "list", message.prefix, lambda: self.store.list(message.prefix))

    @handles(SecretInfo)
    def info(self, message: SecretInfo) -> None:
        self.start(
            message.caller, "metadata", message.path, lambda: self.store.metadata(message.path)
        )

    @handles(NewDataKey)
    def new_data_key(self, message: NewDataKey) -> None:
        self.start(message.caller, "data_key", None, lambda: self.data_keys().generate_data_key())

    @handles(UnwrapDataKey)
    def unwrap_data_key(self, message: UnwrapDataKey) -> None:
        self.start(
            message.caller,
            "unwrap_data_key",
            None,
            lambda: self.data_keys().unwrap_data_key(message.wrapped),
        )

    def data_keys(self) -> DataKeys:
        store = self.store
        if not isinstance(store, DataKeys):
            raise SecretsError(f"the {store.backend} backend does not make data keys")
        return store

    @handles(WatchSecrets)
    def watch(self, message: WatchSecrets) -> None:
        watcher = message.watcher
        if not isinstance(watcher, ActorRef):  # refused to the caller; the actor goes on
            self.defer_reply().fail(TypeError("WatchSecrets.watcher must be an ActorRef"))
            return
        if watcher not in self.watchers:
            self.monitor(watcher)
        self.watchers[watcher] = message.prefix

    @handles(UnwatchSecrets)
    def unwatch(self, message: UnwatchSecrets) -> None:
        self.watchers.pop(message.watcher, None)

    @handles(Down)
    def watcher_down(self, message: Down) -> None:
        self.watchers.pop(message.actor, None)

    @handles(VerifyAudit)
    def verify_audit(self, message: VerifyAudit) -> None:
        audit = self.audit
        if audit is None:
            error = SecretsError("the audit log is off (services.aria_security.audit = false)")
            self.defer_reply().fail(error)
            return

        reply = self.defer_reply()

        async def check() -> None:  # not a secret operation: not audited itself
            try:
                reply.reply(await run_blocking(verify, audit.path))
            except OSError as exc:
                reply.fail(SecretsError(f"cannot read the audit log {audit.path}: {exc}"))

        self.background(check())

    # -- health ---------------------------------------------------------------------------

    @handles(SecurityHealth)
    def report_health(self, message: SecurityHealth) -> None:
        reply = self.defer_reply()

        async def probe_and_reply() -> None:
            await self.probe()
            reply.reply(self.health)

        self.background(probe_and_reply())

    @handles(Probe)
    def scheduled_probe(self, message: Probe) -> None:
        """Probe in a task of its own: a backend that hangs must not hold the actor up."""

        async def probe_then_schedule() -> None:
            await self.probe()
            interval = self.settings.health_interval if self.health.ok else self.backoff
            self.send_after(interval, Probe())
            if not self.health.ok:
                self.backoff = min(self.backoff * 2, self.settings.max_backoff)

        self.background(probe_then_schedule())

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.start_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def probe(self) -> None:
        health = await self.store.health()
        if health.ok and not self.health.ok:
            self.log.info("secrets_recovered", backend=health.backend, detail=health.detail)
            self.backoff = FIRST_BACKOFF
        elif not health.ok and self.health.ok:
            self.log.warning("secrets_degraded", backend=health.backend, detail=health.detail)
        self.health = health
        self.up.set(1 if health.ok else 0)

    def degraded(self, detail: str) -> None:
        """A request found the backend down: report it before the next probe does."""
        if self.health.ok:
            self.log.warning("secrets_degraded", backend=self.store.backend, detail=detail)
            self.health = StoreHealth(
                backend=self.store.backend, ok=False, detail=f"degraded: {detail}"
            )
            self.up.set(0)
