"""The errors of aria_storage.

Every failure names what is wrong and where, so an operator can act on it::

    StorageError (an AriaError)
    ├── InvalidIndex        a .caibx/.caidx that is truncated, garbage, or breaks the format
    │                       (``path`` and ``offset`` say where)
    ├── InvalidArchive      a .catar stream that breaks the format (``offset``)
    ├── ChunkError          something is wrong with one chunk (``chunk_id``)
    │   ├── ChunkMissing    no store in the chain has it
    │   └── CorruptChunk    its bytes do not decompress, or do not hash to its id
    ├── StoreError          a store cannot be used: bad location, I/O or network failure,
    │                       refused by the server (``store``)
    │   └── StoreReadOnly   a write to a store that only reads
    └── UnsupportedFeature  valid input that asks for something this build does not do
                            (an unknown digest, compression or feature flag)

Bad input never destroys stored data: a failed extraction leaves the previous target
in place, a failed write leaves no partial chunk under its final name.
"""

from __future__ import annotations

from ..._runtime.errors import AriaError


class StorageError(AriaError):
    """Base of aria_storage's errors."""


class InvalidIndex(StorageError):
    """An index file (.caibx/.caidx) that cannot be read; names the file and offset."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        where = []
        if path is not None:
            where.append(path)
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.path = path
        self.offset = offset


class InvalidArchive(StorageError):
    """A catar stream that breaks the format; ``offset`` is where reading stopped."""

    def __init__(self, message: str, *, offset: int | None = None):
        super().__init__(message if offset is None else f"offset {offset}: {message}")
        self.offset = offset


class ChunkError(StorageError):
    """Something is wrong with one chunk; ``chunk_id`` is its id in hex."""

    def __init__(self, message: str, *, chunk_id: str):
        super().__init__(message)
        self.chunk_id = chunk_id


class ChunkMissing(ChunkError):
    """No store (of a chain) holds the chunk."""


class CorruptChunk(ChunkError):
    """The chunk's bytes do not decompress, or do not hash to its id."""


class StoreError(StorageError):
    """A store cannot serve the request; ``store`` is its location."""

    def __init__(self, message: str, *, store: str):
        super().__init__(message)
        self.store = store


class StoreReadOnly(StoreError):
    """A write (store or remove) to a store opened read-only."""


class UnsupportedFeature(StorageError):
    """Well-formed input asking for something this build does not implement."""
