"""Moving chunks between stores and files: ``chop`` and ``cache`` (desync's commands).

* :func:`chop` reads the chunks of an index out of the blob they describe and stores
  the ones the store lacks (desync ``chop``: fill a store from a local copy);
* :func:`cache` copies the chunks of indexes from remote stores into a local one
  (desync ``cache``: warm a cache before going offline).

Both check every chunk against its id before storing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .chunks import Compression, check, compress, open_chunk
from .errors import ChunkMissing, CorruptChunk, StorageError
from .ids import ChunkId
from .index import Index
from .pipeline import OrderedPool
from .stores.base import Store


@dataclass
class TransferReport:
    chunks: int = 0
    stored: int = 0
    present: int = 0


def chop(
    index: Index | str | os.PathLike[str],
    blob: str | os.PathLike[str],
    store: Store,
    *,
    compression: Compression = "zstd",
    level: int = 3,
    workers: int | None = None,
) -> TransferReport:
    """Store the chunks of ``index`` read from ``blob`` (the file it describes).

    Raises :class:`CorruptChunk` naming the chunk and offset when the file's bytes do
    not match the index there (the file is not the blob, or changed).
    """
    if not isinstance(index, Index):
        index = Index.read(index)
    digest = index.digest
    try:
        fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(f"cannot read {blob}: {exc.strerror or exc}") from None
    report = TransferReport(chunks=len(index))
    first: dict[bytes, tuple[int, int]] = {}
    for chunk in index:
        first.setdefault(chunk.id, (chunk.start, chunk.size))

    def one(raw: bytes) -> bool:
        cid = ChunkId(raw)
        if store.has(cid):
            return False
        start, size = first[raw]
        data = os.pread(fd, size, start)
        try:
            check(data, cid, digest)
        except CorruptChunk:
            raise CorruptChunk(
                f"{blob} at offset {start}: {size} bytes do not hash to chunk {cid}",
                chunk_id=str(cid),
            ) from None
        store.put(cid, compress(data, compression=compression, level=level))
        return True

    try:
        with OrderedPool[bool](workers) as pool:
            for raw in first:
                pool.submit(one, raw)
            for stored in pool.drain():
                report.stored += stored
                report.present += not stored
    finally:
        os.close(fd)
    return report


def cache(
    indexes: Iterable[Index | str | os.PathLike[str]],
    remotes: Sequence[Store],
    cache_store: Store,
    *,
    workers: int | None = None,
) -> TransferReport:
    """Copy into ``cache_store`` every chunk of ``indexes`` it lacks, from ``remotes``.

    The stored bytes are copied as they are (no recompression) after checking that
    they decompress to the chunk's id. Raises :class:`ChunkMissing` for a chunk no
    remote has.
    """
    wanted: dict[bytes, tuple[str, int]] = {}
    for item in indexes:
        index = item if isinstance(item, Index) else Index.read(item)
        for chunk in index:
            wanted.setdefault(chunk.id, (index.digest, index.max_size))
    report = TransferReport(chunks=len(wanted))

    def one(raw: bytes) -> bool:
        cid = ChunkId(raw)
        if cache_store.has(cid):
            return False
        digest, max_size = wanted[raw]
        for remote in remotes:
            try:
                blob = remote.get(cid)
            except ChunkMissing:
                continue
            open_chunk(blob, cid, digest, max_size=max_size)
            cache_store.put(cid, blob)
            return True
        tried = ", ".join(str(r) for r in remotes)
        raise ChunkMissing(f"chunk {cid} is in none of the stores ({tried})", chunk_id=str(cid))

    with OrderedPool[bool](workers) as pool:
        for raw in wanted:
            pool.submit(one, raw)
        for stored in pool.drain():
            report.stored += stored
            report.present += not stored
    return report
