"""The registered names of aria_storage's actors (``supervisors/aria_storage.toml``);
``aria_storage.server.<name>`` is :func:`.server_actor.server_actor_name`'s."""

from __future__ import annotations

from typing import Final

STORES_SUPERVISOR: Final = "aria_storage.stores"
REGISTRY: Final = "aria_storage.registry"
CATALOGUE: Final = "aria_storage.catalogue"
MAINTENANCE: Final = "aria_storage.maintenance"


def store_actor_name(store: str) -> str:
    """The registered name of store ``store``'s actor."""
    return f"aria_storage.store.{store}"
