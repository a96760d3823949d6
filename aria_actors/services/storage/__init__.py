"""aria_storage: casync/desync-compatible content-addressed storage.

Files are cut into chunks by casync's rolling hash, chunks are stored once by their id in
a chunk store, and an index (``.caibx`` for a blob, ``.caidx`` for a directory archive)
lists them. The formats are byte-compatible with casync 2.

The library's names are re-exported here; most load on first use (PEP 562), so the
``aria-storage`` command does not import what it does not run::

    from aria_actors.services.storage import LocalStore, make, extract

    index, stats = make("hero.bin", LocalStore("/srv/store"))
    index.write("hero.caibx")
    extract("hero.caibx", "copy.bin", LocalStore("/srv/store"))
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

# Bound now, not lazily: these functions share their names with their modules, and
# importing a submodule sets the package attribute of its name to the module.
from .extract import Seed as Seed
from .extract import extract as extract
from .info import info as info
from .info import list_chunks as list_chunks
from .make import make as make

if _TYPE_CHECKING:
    from .archive import UntarStats as UntarStats
    from .archive import make_archive as make_archive
    from .archive import tar as tar
    from .archive import untar as untar
    from .chunker import ChunkerParams as ChunkerParams
    from .client import Storage as Storage
    from .errors import ChunkError as ChunkError
    from .errors import ChunkMissing as ChunkMissing
    from .errors import CorruptChunk as CorruptChunk
    from .errors import InvalidArchive as InvalidArchive
    from .errors import InvalidIndex as InvalidIndex
    from .errors import StorageError as StorageError
    from .errors import StoreError as StoreError
    from .errors import StoreReadOnly as StoreReadOnly
    from .errors import UnsupportedFeature as UnsupportedFeature
    from .ids import ChunkId as ChunkId
    from .index import Index as Index
    from .maintenance import prune as prune
    from .maintenance import verify_index as verify_index
    from .maintenance import verify_store as verify_store
    from .stores.base import Store as Store
    from .stores.chain import CacheStore as CacheStore
    from .stores.chain import ChainStore as ChainStore
    from .stores.chain import open_store as open_store
    from .stores.http import HttpStore as HttpStore
    from .stores.local import LocalStore as LocalStore
    from .stores.s3 import S3Store as S3Store
    from .stores.sftp import SftpStore as SftpStore
    from .transfer import cache as cache
    from .transfer import chop as chop

_LAZY: dict[str, str] = {
    "make_archive": ".archive",
    "tar": ".archive",
    "untar": ".archive",
    "UntarStats": ".archive",
    "ChunkerParams": ".chunker",
    "Storage": ".client",
    "ChunkError": ".errors",
    "ChunkMissing": ".errors",
    "CorruptChunk": ".errors",
    "InvalidArchive": ".errors",
    "InvalidIndex": ".errors",
    "StorageError": ".errors",
    "StoreError": ".errors",
    "StoreReadOnly": ".errors",
    "UnsupportedFeature": ".errors",
    "ChunkId": ".ids",
    "Index": ".index",
    "prune": ".maintenance",
    "verify_index": ".maintenance",
    "verify_store": ".maintenance",
    "Store": ".stores.base",
    "CacheStore": ".stores.chain",
    "ChainStore": ".stores.chain",
    "open_store": ".stores.chain",
    "HttpStore": ".stores.http",
    "LocalStore": ".stores.local",
    "S3Store": ".stores.s3",
    "SftpStore": ".stores.sftp",
    "cache": ".transfer",
    "chop": ".transfer",
}

__all__ = sorted([*_LAZY, "Seed", "extract", "info", "list_chunks", "make"])


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
