"""The messages of aria_storage's actors (use :class:`.client.Storage` instead).

Every one is answered. Failures come back as exceptions: the catalogue's
(:class:`~.catalogue_errors.UnknownAsset`, :class:`~.catalogue_errors.InvalidName`...), the
library's (:class:`~.errors.InvalidIndex`, :class:`~.errors.ChunkMissing`,
:class:`~.errors.StoreError`...), ``ValueError`` for malformed arguments and
``DatabaseError`` when the database is down. None of them stops the actor.

Paths (``path``, ``target``, ``seeds``) are absolute paths on the node's machine.
Version number 0 means the newest live version.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .collector import GcReport
from .retention import RetiredVersion

# -- aria_storage.catalogue ----------------------------------------------------------------


class AddVersion(msgspec.Struct, frozen=True, tag=True):
    """Make the file or directory ``path`` the next version of ``asset`` (created if
    new, in ``store`` or the default store); answers a :class:`~.replies.VersionInfo`.

    A directory becomes an archive version (a ``.caidx``) recording what its feature
    flags say: ``with``/``without`` are casync's ``--with``/``--without`` names
    (``"unix"``, ``"xattrs"``...); given, they replace the settings' ``archive_with``/
    ``archive_without`` (for a file they are refused). An asset's versions are all
    files or all directories."""

    asset: str
    path: str
    store: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    with_: list[str] = msgspec.field(default_factory=list, name="with")
    without: list[str] = msgspec.field(default_factory=list)


class ListAssets(msgspec.Struct, frozen=True, tag=True):
    """Every asset, by name; answers ``list[AssetSummary]``."""


class ListVersions(msgspec.Struct, frozen=True, tag=True):
    """An asset's versions, oldest first; answers ``list[VersionInfo]``."""

    asset: str
    include_retired: bool = False


class GetVersion(msgspec.Struct, frozen=True, tag=True):
    """One version (retired ones too); answers a ``VersionInfo``."""

    asset: str
    version: int = 0


class GetIndex(msgspec.Struct, frozen=True, tag=True):
    """A live version's index, read and checked; answers an :class:`~.index.Index`
    (local callers: an ``Index`` does not cross the console)."""

    asset: str
    version: int = 0


class FetchVersion(msgspec.Struct, frozen=True, tag=True):
    """Write a live version to ``target`` (atomically; an existing file there is used
    as a seed, as are ``seeds``); answers a ``FetchResult``. A directory version goes
    to a directory (built beside it, swapped in whole), never onto a file; the
    directory already there seeds it, as do ``seeds`` (directories or ``.catar``
    files)."""

    asset: str
    target: str
    version: int = 0
    seeds: list[str] = msgspec.field(default_factory=list)


class RetireVersions(msgspec.Struct, frozen=True, tag=True):
    """Retire ``versions`` of ``asset``; without versions, apply the retention policy
    (to ``asset``, or to every asset when it is empty). Answers ``list[RetiredVersion]``."""

    asset: str = ""
    versions: list[int] = msgspec.field(default_factory=list)


class DeleteAsset(msgspec.Struct, frozen=True, tag=True):
    """Delete an asset and all its versions; answers how many versions went."""

    asset: str


class AssetInfo(msgspec.Struct, frozen=True, tag=True):
    """Numbers about an asset's live versions; answers an ``AssetDetails``."""

    asset: str


# -- aria_storage.maintenance --------------------------------------------------------------


class CheckIntegrity(msgspec.Struct, frozen=True, tag=True):
    """Check chunks of live versions (a sample, or all with ``full``) in ``store`` or
    every store; ``repair`` (default: the setting) removes corrupt chunks. Answers
    ``list[IntegrityReport]``."""

    store: str = ""
    full: bool = False
    repair: bool | None = None


class CollectGarbage(msgspec.Struct, frozen=True, tag=True):
    """Apply the retention policy (unless ``retention`` is false), then remove what
    no live version uses from ``store`` or every store. Answers a ``GcResult``."""

    store: str = ""
    dry_run: bool = False
    retention: bool = True


class GcResult(msgspec.Struct, frozen=True):
    """What a garbage collection did: versions retired, then each store's report."""

    retired: list[RetiredVersion]
    stores: list[GcReport]


class IntegrityTick(msgspec.Struct, frozen=True, tag=True):
    """The integrity check's timer (sent to itself)."""


class GcTick(msgspec.Struct, frozen=True, tag=True):
    """The garbage collector's timer (sent to itself)."""


# -- aria_storage.store.<name> -------------------------------------------------------------


class HasChunk(msgspec.Struct, frozen=True, tag=True):
    """Whether the store holds the chunk (64 hex digits); answers a bool."""

    chunk_id: str


class GetChunk(msgspec.Struct, frozen=True, tag=True):
    """The chunk's stored (compressed) bytes, checked against its id with ``digest``
    (default: the service's) unless ``verify`` is false; answers bytes."""

    chunk_id: str
    verify: bool = True
    digest: str = ""


class PutChunk(msgspec.Struct, frozen=True, tag=True):
    """Store a chunk's stored (compressed) bytes. They must decompress and hash to
    ``chunk_id`` (with ``digest``, default: the service's), or nothing is written.
    Answers True when the chunk was new."""

    chunk_id: str
    blob: bytes
    digest: str = ""

    def __repr__(self) -> str:
        return f"PutChunk(chunk_id={self.chunk_id!r}, blob=<{len(self.blob)} bytes>)"


class StoreStats(msgspec.Struct, frozen=True, tag=True):
    """The store's numbers; ``refresh`` counts its chunks and bytes anew (a scan of
    the whole store). Answers a ``StoreStatus``."""

    refresh: bool = False


class StoreStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A store as its actor sees it. ``chunks``/``bytes`` come from the last scan
    (``scanned_at``; 0 if never)."""

    name: str
    location: str
    writable: bool
    chunks: int
    bytes: int
    scanned_at: float


class GetStore(msgspec.Struct, frozen=True, tag=True):
    """The actor's :class:`~.stores.base.Store` (measured), for the catalogue's and
    maintenance's worker threads (local callers only)."""


# -- aria_storage.registry -----------------------------------------------------------------


class ListStores(msgspec.Struct, frozen=True, tag=True):
    """The configured stores; answers ``list[StoreDescription]``."""


class StoreDescription(msgspec.Struct, frozen=True, kw_only=True):
    """A configured store. ``served``: it has a ``serve`` table; ``url``: where its
    chunk-server answers now (``""`` when not served, or while its server restarts)."""

    name: str
    location: str
    writable: bool
    cache: str
    gc: bool
    default: bool
    served: bool = False
    url: str = ""


# -- aria_storage.server.<name> ------------------------------------------------------------


class ServerInfo(msgspec.Struct, frozen=True, tag=True):
    """The store's chunk-server as it runs; answers a :class:`ServerStatus`."""


class ServerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk-server: the ``url`` clients use (the bound port filled in), whether it
    takes uploads (``writable``) and checks aria_auth tokens (``auth``), the requests
    answered since it started, those being handled now (``active``) and the client
    connections open (``connections``)."""

    store: str
    url: str
    listen: str
    writable: bool
    auth: bool
    requests: int
    active: int
    connections: int
