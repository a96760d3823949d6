"""``aria_storage.registry``: starts the store actors (and their chunk-servers) at
boot under the ``stores`` dynamic supervisor, and lists the stores."""

from __future__ import annotations

from ..._runtime.actor import Actor, handles
from ..._runtime.errors import ConfigError
from ..._runtime.specs import ChildSpec
from ..._runtime.supervisor_api import SupervisorRef
from .messages import ListStores, StoreDescription
from .names import STORES_SUPERVISOR, store_actor_name
from .server_actor import SHUTDOWN, ChunkServerActor, served_url, server_actor_name
from .settings import SERVICE, load_settings, store_location
from .store_actor import StoreActor


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
        settings = self.settings
        return [
            StoreDescription(
                name=name,
                location=store_location(settings, name, self.node.state_dir),
                writable=config.writable,
                cache=config.cache,
                gc=config.gc,
                default=name == settings.default_store,
                served=config.serve is not None,
                url=served_url(self.node, name),
            )
            for name, config in settings.stores.items()
        ]
