"""``make``: cut a blob (or any byte stream) into chunks, store them, build the index.

The chunker runs on the calling thread (the C kernel releases the GIL while it scans);
each stretch of cut chunks goes to the worker pool, which hashes every chunk and, for a
chunk the store does not hold yet, compresses and writes it. A chunk already in the
store (or already written by this run) costs only its hash, as in casync. Files are
memory-mapped, so chunk bytes are never copied before hashing and compressing.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from .chunker import Chunker, ChunkerParams
from .chunks import Compression, compress
from .errors import StorageError
from .ids import ChunkId, hasher
from .index import BLOB_INDEX_FLAGS, Index, flags_for_digest
from .pipeline import OrderedPool
from .stores.base import Store

#: bytes the chunker scans per step (and per pool task)
SEGMENT = 4 * 1024 * 1024


@dataclass
class MakeStats:
    """What a make did: chunks in the index, how many were new to the store, bytes."""

    chunks: int = 0
    unique_chunks: int = 0
    new_chunks: int = 0
    bytes_in: int = 0
    bytes_stored: int = 0

    @property
    def dedup_ratio(self) -> float:
        """Chunks in the index per distinct chunk (1.0: nothing repeats)."""
        return self.chunks / self.unique_chunks if self.unique_chunks else 1.0


@dataclass
class _Run:
    store: Store | None
    digest: str
    compression: Compression
    level: int
    stats: MakeStats
    claimed: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, views: list[memoryview]) -> list[tuple[int, bytes]]:
        """Hash (and store) a stretch of chunks; their sizes and ids, in order."""
        make_id = hasher(self.digest)
        out: list[tuple[int, bytes]] = []
        for view in views:
            chunk_id = make_id(view)
            out.append((len(view), chunk_id))
            with self.lock:
                first = chunk_id not in self.claimed
                if first:
                    self.claimed.add(chunk_id)
                    self.stats.unique_chunks += 1
            if first and self.store is not None:
                cid = ChunkId(chunk_id)
                if not self.store.has(cid):
                    blob = compress(view, compression=self.compression, level=self.level)
                    self.store.put(cid, blob)
                    with self.lock:
                        self.stats.new_chunks += 1
                        self.stats.bytes_stored += len(blob)
            view.release()
        return out


def make(
    source: str | os.PathLike[str] | BinaryIO | Iterable[bytes],
    store: Store | None,
    *,
    params: ChunkerParams | None = None,
    digest: str = "sha512-256",
    compression: Compression = "zstd",
    level: int = 3,
    feature_flags: int = BLOB_INDEX_FLAGS,
    workers: int | None = None,
) -> tuple[Index, MakeStats]:
    """Chunk ``source`` into ``store`` and return its index and what was done.

    ``source`` is a path (memory-mapped), a binary file object, or an iterable of byte
    blocks (a catar encoder's output, say). ``store`` may be ``None`` to only compute
    the index (casync's ``make`` without ``--store``). ``feature_flags`` go into the
    index with the digest bits set from ``digest``.

    Raises :class:`~.errors.StoreError` if the store fails, ``OSError`` subclasses
    wrapped in :class:`StorageError` when the source cannot be read.
    """
    params = params or ChunkerParams()
    stats = MakeStats()
    run = _Run(store, digest, compression, level, stats)
    index = Index(
        feature_flags=flags_for_digest(feature_flags, digest),
        min_size=params.min_size,
        avg_size=params.avg_size,
        max_size=params.max_size,
    )
    with contextlib.ExitStack() as resources:
        stretches = _stretches(source, params, resources)
        with OrderedPool[list[tuple[int, bytes]]](workers) as pool:

            def collect(results: Iterator[list[tuple[int, bytes]]]) -> None:
                for batch in results:
                    for size, chunk_id in batch:
                        index.append(size, chunk_id)

            for views in stretches:
                pool.submit(run.process, views)
                collect(pool.results())
            collect(pool.drain())
    stats.chunks = len(index)
    stats.bytes_in = index.blob_size
    return index, stats


def _stretches(
    source: str | os.PathLike[str] | BinaryIO | Iterable[bytes],
    params: ChunkerParams,
    resources: contextlib.ExitStack,
) -> Iterator[list[memoryview]]:
    if isinstance(source, (str, os.PathLike)):
        yield from _file_stretches(Path(source), params, resources)
    elif hasattr(source, "readinto"):
        yield from _stream_stretches(_read_blocks(cast(BinaryIO, source)), params)
    else:
        yield from _stream_stretches(source, params)


def _file_stretches(
    path: Path, params: ChunkerParams, resources: contextlib.ExitStack
) -> Iterator[list[memoryview]]:
    """Stretches of chunks as views of the memory-mapped file.

    The map is closed by ``resources`` (after the pool has released every view).
    """
    try:
        f = resources.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by resources
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    size = os.fstat(f.fileno()).st_size
    if not _is_regular(f):
        yield from _stream_stretches(_read_blocks(f), params)
        return
    if size == 0:
        return
    mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    resources.callback(_close_map, mm)
    mm.madvise(mmap.MADV_SEQUENTIAL)
    whole = memoryview(mm)
    resources.callback(whole.release)
    chunker = Chunker(params)
    last = 0
    for seg in range(0, size, SEGMENT):
        piece = whole[seg : min(seg + SEGMENT, size)]
        cuts = chunker.feed(piece)
        piece.release()
        views = []
        for cut in cuts:
            views.append(whole[last : seg + cut])
            last = seg + cut
        if views:
            yield views
    if last < size:
        yield [whole[last:size]]


def _close_map(mm: mmap.mmap) -> None:
    # views still held after a failure: the GC unmaps it later
    with contextlib.suppress(BufferError):
        mm.close()


def _is_regular(f: BinaryIO) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(f.fileno()).st_mode)


def _read_blocks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            block = f.read(SEGMENT)
        except OSError as exc:
            raise StorageError(f"cannot read the source: {exc.strerror or exc}") from None
        if not block:
            return
        yield block


def _stream_stretches(blocks: Iterable[bytes], params: ChunkerParams) -> Iterator[list[memoryview]]:
    chunker = Chunker(params)
    carry = b""  # bytes after the last cut
    for block in blocks:
        if not block:
            continue
        cuts = chunker.feed(block)
        if not cuts:
            carry += block
            continue
        buf = carry + block if carry else bytes(block)
        base = len(carry)
        view = memoryview(buf)
        views = []
        last = 0
        for cut in cuts:
            views.append(view[last : base + cut])
            last = base + cut
        carry = buf[last:]
        yield views
    if carry:
        yield [memoryview(carry)]
