"""``extract``: rebuild a blob from its index, the chunk stores and any seeds.

Each distinct chunk of the index is obtained once, from the cheapest source that has
it, then written at every offset where the index uses it:

1. a **seed**: a file (or the old target, for an in-place update) chunked with the
   index's settings, whose chunk with the same id is read and re-hashed;
2. the **stores**, tried in order: read, decompressed and checked against its id.

Chunks of zeros are not written at all: the target is created sparse. The blob is
built in a temporary file beside the target and renamed over it only when complete,
so a failure (a missing or corrupt chunk, a full disk) leaves the old target as it
was, and no half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .chunker import ChunkerParams
from .chunks import check
from .errors import CorruptChunk, StorageError
from .ids import ChunkId
from .index import Index
from .make import make
from .pipeline import OrderedPool
from .stores.base import Store, fetch_chunk

#: distinct chunks handled per pool task
BATCH = 16
#: compared with (never written: its pages stay unallocated)
_ZEROS = bytes(128 << 20)


@dataclass
class ExtractStats:
    """Where the chunks of an extraction came from."""

    chunks: int = 0
    unique_chunks: int = 0
    from_store: int = 0
    from_seed: int = 0
    zero_chunks: int = 0
    bytes_written: int = 0


@dataclass(frozen=True)
class Seed:
    """A file that may share chunks with the blob being extracted.

    With ``index`` (the seed's own index, made with the same chunk sizes) the seed is
    not chunked again; without it, it is chunked and hashed first. Either way each
    chunk taken from a seed is re-hashed when read: a seed that changed since its
    index was made costs a store fetch, never a wrong byte.
    """

    path: str | os.PathLike[str]
    index: Index | str | os.PathLike[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Seed:
        """desync's ``--seed`` syntax: ``INDEX`` (the blob beside it, without ``.caibx``)
        or ``INDEX:BLOB``."""
        index, sep, blob = text.partition(":")
        if not sep:
            if not index.endswith(".caibx"):
                raise StorageError(f"seed {text!r}: name the blob as INDEX:BLOB")
            blob = index[: -len(".caibx")]
        return cls(blob, index)


@dataclass(frozen=True, slots=True)
class _SeedChunk:
    fd: int
    offset: int
    size: int
    name: str


def extract(
    index: Index | str | os.PathLike[str],
    target: str | os.PathLike[str],
    stores: Store | Sequence[Store],
    *,
    seeds: Sequence[Seed | str | os.PathLike[str]] = (),
    in_place: bool = True,
    workers: int | None = None,
) -> ExtractStats:
    """Write the blob ``index`` describes to ``target``.

    ``stores`` are tried in order for each chunk. ``seeds`` are files (or
    :class:`Seed` with their index) whose content may share chunks with the blob;
    with ``in_place`` an existing ``target`` is a seed too (an update fetches only
    what changed, at the cost of reading the old file).

    Raises :class:`ChunkMissing` naming the first chunk no store or seed has,
    :class:`CorruptChunk` for a chunk whose bytes do not match its id,
    :class:`StorageError` when the target cannot be written. On any failure the old
    target is untouched and the temporary file is removed.
    """
    if not isinstance(index, Index):
        index = Index.read(index)
    store_list = [stores] if isinstance(stores, Store) else list(stores)
    target = Path(target)
    digest = index.digest
    stats = ExtractStats(chunks=len(index))

    # where each distinct chunk goes
    places: dict[bytes, list[int]] = {}
    sizes: dict[bytes, int] = {}
    for chunk in index:
        offs = places.get(chunk.id)
        if offs is None:
            places[chunk.id] = [chunk.start]
            sizes[chunk.id] = chunk.size
        else:
            offs.append(chunk.start)
    stats.unique_chunks = len(places)

    with contextlib.ExitStack() as resources:
        seed_map: dict[bytes, _SeedChunk] = {}
        seed_list = [s if isinstance(s, Seed) else Seed(s) for s in seeds]
        if in_place and target.is_file():
            seed_list.append(Seed(target))
        params = ChunkerParams(index.min_size, index.avg_size, index.max_size)
        for seed in seed_list:
            _add_seed(seed, params, digest, places, seed_map, resources, workers)

        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create {tmp}: {exc.strerror or exc}") from None
        ok = False
        try:
            try:
                os.ftruncate(fd, index.blob_size)
            except OSError as exc:
                raise StorageError(f"cannot size {tmp}: {exc.strerror or exc}") from None

            def work(batch: list[bytes]) -> tuple[int, int, int, int]:
                store_n = seed_n = zero_n = written = 0
                for raw in batch:
                    cid = ChunkId(raw)
                    size = sizes[raw]
                    data: bytes | None = None
                    seed = seed_map.get(raw)
                    if seed is not None:
                        data = _read_seed(seed, cid, digest)
                        if data is not None:
                            seed_n += 1
                    if data is None:
                        data = fetch_chunk(store_list, cid, digest, size=size)
                        store_n += 1
                    if data[0] == 0 and data[-1] == 0 and _ZEROS.startswith(data):
                        zero_n += 1
                        continue
                    for offset in places[raw]:
                        _pwrite_all(fd, data, offset, tmp)
                        written += size
                return store_n, seed_n, zero_n, written

            ids = list(places)
            with OrderedPool[tuple[int, int, int, int]](workers) as pool:
                for i in range(0, len(ids), BATCH):
                    pool.submit(work, ids[i : i + BATCH])
                for store_n, seed_n, zero_n, written in pool.drain():
                    stats.from_store += store_n
                    stats.from_seed += seed_n
                    stats.zero_chunks += zero_n
                    stats.bytes_written += written
            if target.exists():
                with contextlib.suppress(OSError):
                    os.fchmod(fd, stat.S_IMODE(target.stat().st_mode))
            os.close(fd)
            fd = -1
            os.replace(tmp, target)
            ok = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not ok:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
    return stats


def _add_seed(
    seed: Seed,
    params: ChunkerParams,
    digest: str,
    wanted: dict[bytes, list[int]],
    seed_map: dict[bytes, _SeedChunk],
    resources: contextlib.ExitStack,
    workers: int | None,
) -> None:
    name = os.fspath(seed.path)
    try:
        fd = os.open(seed.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(f"cannot read seed {name}: {exc.strerror or exc}") from None
    resources.callback(os.close, fd)
    if seed.index is None:
        seed_index, _ = make(seed.path, None, params=params, digest=digest, workers=workers)
    else:
        seed_index = seed.index if isinstance(seed.index, Index) else Index.read(seed.index)
        if seed_index.digest != digest:
            raise StorageError(
                f"seed {name}: its index uses {seed_index.digest}, the blob's uses {digest}"
            )
    for chunk in seed_index:
        if chunk.id in wanted and chunk.id not in seed_map:
            seed_map[chunk.id] = _SeedChunk(fd, chunk.start, chunk.size, name)


def _read_seed(seed: _SeedChunk, cid: ChunkId, digest: str) -> bytes | None:
    """The seed's chunk, re-checked (the seed may have changed); ``None`` if it did."""
    try:
        data = os.pread(seed.fd, seed.size, seed.offset)
        check(data, cid, digest)
    except (OSError, CorruptChunk):
        return None
    return data


def _pwrite_all(fd: int, data: bytes, offset: int, path: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
