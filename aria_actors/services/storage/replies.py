"""What the catalogue answers about assets and versions (the reports of retention,
the collector and the integrity check live with them)."""

from __future__ import annotations

from typing import Any

import msgspec

from .index_files import VersionKind


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an asset: what it is, and what adding it cost the store.

    ``kind`` is ``blob`` (a file, indexed by a ``.caibx``) or ``archive`` (a directory,
    its catar archive indexed by a ``.caidx``); ``size`` is the file's bytes, or the
    archive's. ``chunks``/``unique_chunks`` are the index's; ``new_chunks``/
    ``new_bytes`` are the chunks (and their compressed bytes) the store did not hold
    yet when it was added: ``chunks - new_chunks`` were deduplicated.
    """

    asset: str
    number: int
    store: str
    size: int
    chunks: int
    unique_chunks: int
    new_chunks: int
    new_bytes: int
    digest: str
    index_digest: str
    index_path: str
    created_at: float
    kind: VersionKind = "blob"
    retired: bool = False
    retired_at: float | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class AssetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """An asset in :meth:`~.catalogue.Catalogue.assets`: its live versions and the
    newest one. ``kind``: its versions' (all of an asset's versions are files, or all
    are directories)."""

    name: str
    store: str
    versions: int
    retired: int
    latest: int
    size: int
    created_at: float
    updated_at: float
    kind: VersionKind = "blob"


class AssetDetails(msgspec.Struct, frozen=True, kw_only=True):
    """Numbers about an asset's live versions, read from their indexes.

    ``dedup_ratio`` is chunk references per distinct chunk across the live versions
    (1.0: nothing shared); ``stored_bytes`` the compressed bytes of those distinct
    chunks in the store, ``in_store`` how many of them it holds. ``kind``: its
    versions' (``blob``: files, ``archive``: directories).
    """

    name: str
    store: str
    created_at: float
    versions: int
    retired: int
    latest: VersionInfo | None
    logical_bytes: int
    chunk_refs: int
    unique_chunks: int
    dedup_ratio: float
    in_store: int
    stored_bytes: int
    kind: VersionKind = "blob"


class FetchResult(msgspec.Struct, frozen=True, kw_only=True):
    """What fetching a version wrote, and where its chunks came from.

    For a directory version (``kind = "archive"``) ``size`` and ``bytes_written`` are
    the bytes of its archive (files, their metadata and the directories), and
    ``chunks``, ``from_store`` and ``from_seed`` count chunks as its index lists them
    (the archive is read in order: a repeated chunk counts each time), taken from the
    seeds (the directory already at the target, then those given) or the store.
    """

    asset: str
    version: int
    target: str
    size: int
    chunks: int
    unique_chunks: int
    from_store: int
    from_seed: int
    zero_chunks: int
    bytes_written: int
    kind: VersionKind = "blob"
