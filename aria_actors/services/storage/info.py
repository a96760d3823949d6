"""``info`` and ``list``: what an index holds, and how much of it a store has."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import ChunkMissing
from .ids import ChunkId
from .index import Index
from .pipeline import OrderedPool
from .stores.base import Store


@dataclass(frozen=True)
class IndexInfo:
    """Numbers about an index (desync's ``info``); store fields are ``None`` without one."""

    chunks: int
    unique_chunks: int
    blob_size: int
    min_size: int
    avg_size: int
    max_size: int
    digest: str
    feature_flags: int
    in_store: int | None = None
    bytes_in_store: int | None = None

    @property
    def dedup_ratio(self) -> float:
        """Chunks per distinct chunk: how much repetition the index has."""
        return self.chunks / self.unique_chunks if self.unique_chunks else 1.0

    @property
    def average_chunk(self) -> float:
        return self.blob_size / self.chunks if self.chunks else 0.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "chunks": self.chunks,
            "unique-chunks": self.unique_chunks,
            "size": self.blob_size,
            "dedup-ratio": round(self.dedup_ratio, 4),
            "chunk-size-min": self.min_size,
            "chunk-size-avg": self.avg_size,
            "chunk-size-max": self.max_size,
            "digest": self.digest,
            "feature-flags": f"{self.feature_flags:#018x}",
        }
        if self.in_store is not None:
            out["in-store"] = self.in_store
            out["bytes-in-store"] = self.bytes_in_store
        return out


def info(
    index: Index | str | os.PathLike[str], store: Store | None = None, *, workers: int | None = None
) -> IndexInfo:
    """Count an index's chunks; with ``store``, how many it holds and their stored bytes."""
    if not isinstance(index, Index):
        index = Index.read(index)
    ids = index.unique_ids()
    in_store = stored = None
    if store is not None:
        in_store = stored = 0

        def size(cid: ChunkId) -> int:
            try:
                return store.size(cid)
            except ChunkMissing:
                return -1

        with OrderedPool[int](workers) as pool:
            for cid in ids:
                pool.submit(size, cid)
            for n in pool.drain():
                if n >= 0:
                    in_store += 1
                    stored += n
    return IndexInfo(
        chunks=len(index),
        unique_chunks=len(ids),
        blob_size=index.blob_size,
        min_size=index.min_size,
        avg_size=index.avg_size,
        max_size=index.max_size,
        digest=index.digest,
        feature_flags=index.feature_flags,
        in_store=in_store,
        bytes_in_store=stored,
    )


def list_chunks(index: Index | str | os.PathLike[str]) -> Iterator[ChunkId]:
    """The chunk ids of an index, in order, repeats included (desync ``list-chunks``)."""
    if not isinstance(index, Index):
        index = Index.read(index)
    for i in range(len(index)):
        yield index.chunk_id(i)
