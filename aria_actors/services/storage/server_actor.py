"""A node serving its chunk stores over HTTP: one :class:`ChunkServerActor` per store
that has a ``serve`` table (``[services.aria_storage.stores.<name>.serve]``).

::

    [services.aria_storage.stores.default.serve]
    listen = "127.0.0.1:8765"      # port 0: any free port (its URL: Storage.servers())
    writable = false               # true: accept verified PUTs (and DELETEs)
    auth = true                    # aria_auth tokens: storage:read / storage:write

The :class:`~.registry_actor.StoreRegistry` starts the server actors under the ``stores``
dynamic supervisor, each right after its store's actor, registered as
``aria_storage.server.<name>``. Each runs a :class:`~.stores.server.ChunkServer`
(desync's layout: ``GET /<xxxx>/<id>.cacnk``, aria's ``GET /_ids`` listing) on a
store of its own, opened as the store actor opens its one (the same location,
cache and credentials; stores are thread-safe) and timed into the same
``aria_storage_store_seconds{store, op}``. It does not borrow the store actor's
object: a restart of either one then never leaves the other with a closed store.

With ``auth = true`` every request needs ``Authorization: Bearer <token>``, an
aria_auth token for service ``aria_storage`` granting ``read_permission`` (GET,
HEAD, the listing) or ``write_permission`` (PUT, DELETE); the request's ``storage``
resource is ``/stores/<name>``, so a token attenuated with
``scope("storage", "/stores/<name>")`` opens that one store's server only. No token
answers 401, a token that does not grant the request 403, aria_auth down 503.

Chunks uploaded over HTTP belong to no version in the catalogue: on a store with
``gc = true`` the garbage collector removes them once ``gc_grace`` has passed. A
writable server is for stores other tools write to (``gc = false``); the actor
logs a warning otherwise.

The port is freed whenever the actor exits: ``terminate`` stops the server, and an
actor killed outright (no ``terminate``) has its server stopped by a watcher task
and by its successor's ``init`` before that binds the port again, so a restart
serves on the same configured port.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Final

from ..._runtime.actor import Actor, handles
from ..._runtime.blocking import run_blocking
from ..._runtime.errors import ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from ..auth.client import Auth
from .ids import ChunkId
from .messages import ServerInfo, ServerStatus
from .metrics import MeasuredStore, Metrics
from .settings import SERVICE, load_settings
from .store_actor import open_configured, store_options
from .stores.base import Store
from .stores.server import ChunkServer, aria_auth_authorizer

SHUTDOWN: Final = 10.0
"""The child's shutdown time: the server lets running requests finish for half of it."""


def server_actor_name(store: str) -> str:
    """The registered name of store ``store``'s chunk-server actor."""
    return f"aria_storage.server.{store}"


def store_resource(store: str) -> str:
    """The ``storage`` resource of every request to store ``store``'s server."""
    return f"/stores/{store}"


class _Serving:
    """A running chunk-server and the store it owns; :meth:`shut` is idempotent (the
    actor's ``terminate``, its watcher and its successor may all call it)."""

    def __init__(self, store: str, server: ChunkServer, backend: Store) -> None:
        self.store = store
        self.server = server
        self.backend = backend
        self._shutting: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    def watch(self, node: Node, ref: ActorRef) -> None:
        """Shut down once the actor ``ref`` has exited, however it exited."""

        async def watch() -> None:
            await ref.wait()
            await self.shut(node)

        self._watcher = asyncio.get_running_loop().create_task(watch())

    async def shut(self, node: Node) -> None:
        """Stop the server (freeing its port), close the store, forget this one."""
        if self._shutting is None:
            self._shutting = asyncio.get_running_loop().create_task(self._shut(node))
        await asyncio.shield(self._shutting)

    async def _shut(self, node: Node) -> None:
        try:
            await self.server.stop()
        finally:
            with contextlib.suppress(Exception):
                await run_blocking(self.backend.close)
            table = _SERVING.get(node)
            if table is not None and table.get(self.store) is self:
                del table[self.store]


_SERVING: weakref.WeakKeyDictionary[Node, dict[str, _Serving]] = weakref.WeakKeyDictionary()
"""Each node's running chunk-servers by store; they outlive an actor killed outright."""


def _serving(node: Node) -> dict[str, _Serving]:
    found = _SERVING.get(node)
    if found is None:
        found = _SERVING[node] = {}
    return found


def served_url(node: Node, store: str) -> str:
    """The URL store ``store``'s chunk-server answers at now (``""``: none running)."""
    serving = _SERVING.get(node, {}).get(store)
    if serving is None or not serving.server.running:
        return ""
    return serving.server.url


class ChunkServerActor(Actor):
    """``aria_storage.server.<name>``: serves store ``<name>`` over HTTP as its
    ``serve`` table says; answers :class:`~.messages.ServerInfo`. See the module
    documentation."""

    async def init(self, store: str) -> None:
        settings = load_settings(self.node.service_settings(SERVICE))
        config = settings.stores.get(store)
        if config is None or config.serve is None:
            raise ConfigError(f"services.{SERVICE}.stores.{store}.serve: not configured")
        serve = config.serve
        self.name = store
        self.serve = serve
        table = _serving(self.node)
        previous = table.get(store)
        if previous is not None:  # a predecessor killed outright: free its port first
            await previous.shut(self.node)
        names = [store] + ([config.cache] if config.cache else [])
        options = await store_options(self.node, settings, names)
        raw = await run_blocking(open_configured, settings, store, self.node.state_dir, options)
        backend = MeasuredStore(raw, store, Metrics(self.node))
        authorize = None
        if serve.auth:
            resource = store_resource(store)

            def scope(method: str, chunk_id: ChunkId | None) -> str:
                return resource

            authorize = aria_auth_authorizer(
                Auth(self.node),
                serve.read_permission,
                serve.write_permission,
                service=SERVICE,
                resource=scope,
            )
        host, port = serve.address
        server = ChunkServer(
            backend,
            host=host,
            port=port,
            writable=serve.writable,
            digest=settings.digest,
            authorize=authorize,
            shutdown_timeout=SHUTDOWN / 2,
        )
        try:
            await server.start()
        except OSError as exc:
            with contextlib.suppress(Exception):
                await run_blocking(backend.close)
            raise ConfigError(
                f"services.{SERVICE}.stores.{store}.serve.listen: cannot listen on "
                f"{serve.listen}: {exc}"
            ) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await run_blocking(backend.close)
            raise
        self.serving = _Serving(store, server, backend)
        table[store] = self.serving
        self.serving.watch(self.node, self.ref)
        self.log.info(
            "store_served",
            store=store,
            url=server.url,
            writable=serve.writable,
            auth=serve.auth,
        )
        if serve.writable and config.gc:
            self.log.warning(
                "served_store_collected",
                store=store,
                detail=(
                    "chunks uploaded over HTTP belong to no catalogued version: the garbage "
                    f"collector removes them after gc_grace; set stores.{store}.gc = false "
                    "if other tools write to this store"
                ),
            )

    async def terminate(self, reason: ExitReason) -> None:
        await self.serving.shut(self.node)

    @handles(ServerInfo)
    def server_info(self, message: ServerInfo) -> ServerStatus:
        server = self.serving.server
        return ServerStatus(
            store=self.name,
            url=server.url,
            listen=self.serve.listen,
            writable=server.writable,
            auth=server.authorize is not None,
            requests=server.requests,
            active=server.active,
            connections=server.connections,
        )
