"""What every chunk store is: a place holding stored chunks (``.cacnk`` bytes) by id.

Stores are blocking and thread-safe: the make/extract pipelines call them from worker
threads, the service's store actors through ``anyio.to_thread``. A store deals in
*stored* bytes (compressed); :func:`fetch_chunk` decompresses and checks them.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from types import TracebackType

from ..chunks import CHUNK_SIZE_LIMIT, open_chunk
from ..errors import ChunkMissing, CorruptChunk, StoreReadOnly
from ..ids import ChunkId


class Store(abc.ABC):
    """A chunk store. Subclasses set ``location`` and implement the abstract methods.

    Failure modes, for every implementation:

    * :class:`~..errors.ChunkMissing` from :meth:`get` when the chunk is not there;
    * :class:`~..errors.StoreError` (naming the store) for I/O, network or server errors;
    * :class:`~..errors.StoreReadOnly` from :meth:`put` / :meth:`remove` on a read-only store.
    """

    location: str = ""
    writable: bool = True

    @abc.abstractmethod
    def get(self, chunk_id: ChunkId) -> bytes:
        """The stored (compressed) bytes of a chunk."""

    @abc.abstractmethod
    def has(self, chunk_id: ChunkId) -> bool:
        """Whether the store holds the chunk (without reading it when the store can)."""

    @abc.abstractmethod
    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        """Store a chunk's stored bytes; a chunk already there is left as it is.

        The write is atomic: readers see the whole chunk or none, and an interrupted
        write leaves nothing under the chunk's final name.
        """

    @abc.abstractmethod
    def remove(self, chunk_id: ChunkId) -> None:
        """Remove a chunk; removing one that is not there is not an error."""

    @abc.abstractmethod
    def ids(self) -> Iterator[ChunkId]:
        """Every chunk id in the store, in no particular order."""

    def size(self, chunk_id: ChunkId) -> int:
        """Stored (compressed) bytes of a chunk; stores that can ask cheaply override it."""
        return len(self.get(chunk_id))

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections and files; the store is not used afterwards."""

    def _refuse_write(self) -> None:
        if not self.writable:
            raise StoreReadOnly(f"store {self.location} is read-only", store=self.location)

    def __str__(self) -> str:
        return self.location

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def fetch_chunk(
    stores: Store | Sequence[Store],
    chunk_id: ChunkId,
    digest: str = "sha512-256",
    *,
    max_size: int = CHUNK_SIZE_LIMIT,
    size: int | None = None,
) -> bytes:
    """A chunk's bytes: read, decompressed and checked against its id.

    With several stores, each is tried in order and the first good copy wins: a
    corrupt copy in one store does not hide a good one in the next. ``size`` (the
    length the index gives) caps the decompression and must match.

    Raises :class:`~..errors.ChunkMissing` naming every store tried when none has it,
    :class:`~..errors.CorruptChunk` (the first one met) when every copy is bad.
    """
    store_list = [stores] if isinstance(stores, Store) else stores
    corrupt: CorruptChunk | None = None
    limit = max_size if size is None else size
    for store in store_list:
        try:
            blob = store.get(chunk_id)
        except ChunkMissing:
            continue
        try:
            data = open_chunk(blob, chunk_id, digest, max_size=limit)
        except CorruptChunk as exc:
            corrupt = corrupt or CorruptChunk(f"store {store}: {exc}", chunk_id=str(chunk_id))
            continue
        if size is not None and len(data) != size:
            raise CorruptChunk(
                f"chunk {chunk_id}: {len(data)} bytes, the index says {size}",
                chunk_id=str(chunk_id),
            )
        return data
    if corrupt is not None:
        raise corrupt
    tried = ", ".join(str(s) for s in store_list) or "no stores"
    raise ChunkMissing(
        f"chunk {chunk_id} is in none of the stores ({tried})", chunk_id=str(chunk_id)
    )
