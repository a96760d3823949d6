"""How other services and apps use aria_storage: ``Storage(node)``.

::

    storage = Storage(node)
    v1 = await storage.add_version("hero", "/srv/models/hero.bin", metadata={"by": "alice"})
    await storage.fetch("hero", "/tmp/hero.bin")                 # the newest live version
    await storage.add_version("levels", "/srv/levels")           # a directory (a .caidx)
    await storage.fetch("levels", "/tmp/levels")                 # swapped in whole
    [info] = await storage.versions("hero")
    await storage.retire("hero", [1])                             # or the policy: retire()
    report = await storage.collect_garbage()                      # retention, then prune

Every method is a call to one of the service's actors (``aria_storage.catalogue``,
``aria_storage.maintenance``, ``aria_storage.store.<name>``, ``aria_storage.registry``,
``aria_storage.server.<name>``).
Adds and fetches wait up to ``job_timeout`` seconds (big files take a while),
everything else ``timeout``. Paths are paths on the node's machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

from ..._runtime.errors import NoProcess
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from .index import Index
from .integrity import IntegrityReport
from .messages import (
    AddVersion,
    AssetInfo,
    CheckIntegrity,
    CollectGarbage,
    DeleteAsset,
    FetchVersion,
    GcResult,
    GetChunk,
    GetIndex,
    GetVersion,
    HasChunk,
    ListAssets,
    ListStores,
    ListVersions,
    PutChunk,
    RetireVersions,
    ServerInfo,
    ServerStatus,
    StoreDescription,
    StoreStats,
    StoreStatus,
)
from .names import CATALOGUE, MAINTENANCE, REGISTRY, store_actor_name
from .replies import AssetDetails, AssetSummary, FetchResult, VersionInfo
from .retention import RetiredVersion
from .server_actor import server_actor_name

TIMEOUT: Final = 30.0
JOB_TIMEOUT: Final = 3600.0


class Storage:
    """A handle on aria_storage (cheap to make)."""

    def __init__(
        self, node: Node, timeout: float = TIMEOUT, job_timeout: float = JOB_TIMEOUT
    ) -> None:
        self.node = node
        self.timeout = timeout
        self.job_timeout = job_timeout

    def ref(self, name: str = CATALOGUE) -> ActorRef:
        """One of the service's actors.

        Raises:
            NoProcess: it is not running on this node.
        """
        ref = self.node.whereis(name)
        if ref is None:
            raise NoProcess(name, "is the aria_storage service running?")
        return ref

    async def _call(self, message: object, name: str = CATALOGUE, long: bool = False) -> Any:
        timeout = self.job_timeout if long else self.timeout
        return await self.ref(name).call(message, timeout=timeout)

    # -- the catalogue -------------------------------------------------------------------------

    async def add_version(
        self,
        asset: str,
        path: str,
        *,
        store: str = "",
        metadata: Mapping[str, Any] | None = None,
        with_: Iterable[str] = (),
        without: Iterable[str] = (),
    ) -> VersionInfo:
        """Make the file or directory ``path`` the next version of ``asset`` (created
        on first use, in ``store`` or the default store). A directory is archived with
        the feature flags ``with_``/``without`` (casync's names; default: the
        settings', else casync's default)."""
        message = AddVersion(
            asset, str(path), store, dict(metadata or {}), list(with_), list(without)
        )
        return cast(VersionInfo, await self._call(message, long=True))

    async def assets(self) -> list[AssetSummary]:
        return cast(list[AssetSummary], await self._call(ListAssets()))

    async def versions(self, asset: str, include_retired: bool = False) -> list[VersionInfo]:
        """``asset``'s versions, oldest first."""
        return cast(list[VersionInfo], await self._call(ListVersions(asset, include_retired)))

    async def version(self, asset: str, version: int = 0) -> VersionInfo:
        """One version (0: the newest live one)."""
        return cast(VersionInfo, await self._call(GetVersion(asset, version)))

    async def index(self, asset: str, version: int = 0) -> Index:
        """A live version's index (checked against its recorded digest)."""
        return cast(Index, await self._call(GetIndex(asset, version)))

    async def fetch(
        self, asset: str, target: str, version: int = 0, seeds: Iterable[str] = ()
    ) -> FetchResult:
        """Write a live version to ``target`` (atomically): a file version to a file,
        a directory version to a directory (replaced whole). What is at the target,
        and ``seeds``, seed it (files for a file, directories for a directory)."""
        message = FetchVersion(asset, str(target), version, [str(s) for s in seeds])
        return cast(FetchResult, await self._call(message, long=True))

    async def retire(self, asset: str = "", versions: Iterable[int] = ()) -> list[RetiredVersion]:
        """Retire ``versions`` of ``asset``; without versions, apply the retention
        policy (to ``asset``, or every asset)."""
        message = RetireVersions(asset, sorted(set(versions)))
        return cast(list[RetiredVersion], await self._call(message))

    async def delete_asset(self, asset: str) -> int:
        """Delete ``asset`` and all its versions; how many versions."""
        return cast(int, await self._call(DeleteAsset(asset)))

    async def info(self, asset: str) -> AssetDetails:
        """Numbers about ``asset``'s live versions (dedup ratio, bytes in the store)."""
        return cast(AssetDetails, await self._call(AssetInfo(asset), long=True))

    # -- maintenance ---------------------------------------------------------------------------

    async def check_integrity(
        self, store: str = "", *, full: bool = False, repair: bool | None = None
    ) -> list[IntegrityReport]:
        """Check chunks of the live versions (a sample, or all with ``full``)."""
        message = CheckIntegrity(store, full, repair)
        return cast(list[IntegrityReport], await self._call(message, MAINTENANCE, long=True))

    async def collect_garbage(
        self, store: str = "", *, dry_run: bool = False, retention: bool = True
    ) -> GcResult:
        """Apply the retention policy, then remove what no live version uses."""
        message = CollectGarbage(store, dry_run, retention)
        return cast(GcResult, await self._call(message, MAINTENANCE, long=True))

    # -- stores --------------------------------------------------------------------------------

    async def stores(self) -> list[StoreDescription]:
        return cast(list[StoreDescription], await self._call(ListStores(), REGISTRY))

    async def server(self, store: str) -> ServerStatus:
        """Store ``store``'s chunk-server: its URL (the bound port filled in), requests
        answered, connections open.

        Raises:
            NoProcess: the store has no ``serve`` table, or its server is restarting.
        """
        return cast(ServerStatus, await self._call(ServerInfo(), server_actor_name(store)))

    async def servers(self) -> list[ServerStatus]:
        """The chunk-server of every served store, in the configuration's order.

        Raises:
            NoProcess: a served store's server is restarting (try again).
        """
        return [await self.server(d.name) for d in await self.stores() if d.served]

    async def store_stats(self, store: str, refresh: bool = False) -> StoreStatus:
        message = StoreStats(refresh)
        return cast(StoreStatus, await self._call(message, store_actor_name(store), refresh))

    async def has_chunk(self, store: str, chunk_id: str) -> bool:
        return cast(bool, await self._call(HasChunk(chunk_id), store_actor_name(store)))

    async def get_chunk(self, store: str, chunk_id: str, verify: bool = True) -> bytes:
        """A chunk's stored (compressed) bytes, checked against its id."""
        message = GetChunk(chunk_id, verify)
        return cast(bytes, await self._call(message, store_actor_name(store)))

    async def put_chunk(self, store: str, chunk_id: str, blob: bytes) -> bool:
        """Store a chunk's stored bytes (checked first); True when it was new."""
        return cast(bool, await self._call(PutChunk(chunk_id, blob), store_actor_name(store)))
