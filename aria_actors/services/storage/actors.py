"""aria_storage's actor shell: a store actor per configured store, the catalogue and
the maintenance actor (see ``supervisors/aria_storage.toml``)::

    aria_storage (rest_for_one)
    ├── stores      dynamic supervisor: aria_storage.store.<name>, one StoreActor per store
    │               (store_actor.py), and aria_storage.server.<name>, a ChunkServerActor
    │               per served store (server_actor.py)
    ├── registry    StoreRegistry (registry_actor.py): starts the store actors at boot,
    │               lists the stores
    ├── catalogue   CatalogueActor (catalogue_actor.py): assets and versions (aria_data),
    │               adds and fetches
    └── maintenance MaintenanceActor (maintenance_actor.py): integrity checks and garbage
                    collection on timers

What they share: their registered names (names.py), answering calls from tasks
(request_actor.py), the metrics and the measured store (metrics.py), and the node's
store locks (locks.py). This module gathers their public names, where they used to
live.

Long operations never hold a mailbox: each request runs in a task answering later
(a deferred reply). Adds to one asset are serialized by a per-asset lock; at most
``max_jobs`` adds and fetches run at once. Adds, fetches and integrity checks hold
their store's :class:`~.locks.StoreLock` shared, the garbage collector holds it
exclusively: it never prunes a store while a make writes into it. The locks live in a
per-node :class:`~.locks.Coordination`, so they outlive restarts of the actors.

Expected failures (bad requests, a damaged index, a store or the database down) go
back to the caller; anything else is a bug and crashes the actor, which its
supervisor restarts.
"""

from __future__ import annotations

from .catalogue_actor import CatalogueActor, open_catalogue
from .locks import coordination
from .maintenance_actor import MaintenanceActor
from .metrics import LATENCY_BUCKETS, MeasuredStore, Metrics
from .names import CATALOGUE, MAINTENANCE, REGISTRY, STORES_SUPERVISOR, store_actor_name
from .registry_actor import StoreRegistry
from .request_actor import EXPECTED, RequestActor
from .store_actor import (
    STORE_CONCURRENCY,
    StoreActor,
    open_configured,
    store_handle,
    store_options,
)

__all__ = [
    "CATALOGUE",
    "EXPECTED",
    "LATENCY_BUCKETS",
    "MAINTENANCE",
    "REGISTRY",
    "STORES_SUPERVISOR",
    "STORE_CONCURRENCY",
    "CatalogueActor",
    "MaintenanceActor",
    "MeasuredStore",
    "Metrics",
    "RequestActor",
    "StoreActor",
    "StoreRegistry",
    "coordination",
    "open_catalogue",
    "open_configured",
    "store_actor_name",
    "store_handle",
    "store_options",
]
