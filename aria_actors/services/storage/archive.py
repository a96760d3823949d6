"""Directory trees: ``tar`` (a tree to a ``.catar``, or chunked into a store with a
``.caidx``) and ``untar`` (back to a tree), plus reading a chunked archive as a stream.

An untar builds the tree in a hidden temporary directory beside the target and swaps
it in only when the archive has been read to its end, so a bad archive, a missing or
corrupt chunk leaves the previous target as it was (the swap is an atomic
``renameat2(RENAME_EXCHANGE)`` where the kernel offers it).

An untar from a ``.caidx`` takes chunks from **seeds** before asking the stores, as
``casync extract --seed=DIR`` does: directories (a previous version of the tree, and by
default the existing target itself) whose catar stream, encoded with the index's
feature flags and cut with its chunk sizes, shares chunks with the archive, or files
(a ``.catar``). See :func:`untar`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import catar
from . import flags as ff
from .chunker import ChunkerParams
from .chunks import Compression, check
from .errors import ChunkMissing, CorruptChunk, StorageError
from .ids import ChunkId, hasher
from .index import Index, flags_for_digest
from .make import MakeStats, _stream_stretches, make
from .pipeline import OrderedPool
from .stores.base import Store, fetch_chunk

#: bytes per block of the encoder's stream (the chunker's step)
BLOCK = 1 << 20


def tar(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    feature_flags: int = ff.DEFAULT,
    exclude_files: bool | None = None,
) -> int:
    """Write the catar archive of ``source`` to the file ``output``; its size.

    The file appears complete or not at all (a temporary, then a rename).
    """
    target = Path(output)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    size = 0
    try:
        with open(tmp, "xb") as out:
            for block in catar.encode(
                source, feature_flags, block_size=BLOCK, exclude_files=exclude_files
            ):
                out.write(block)
                size += len(block)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def make_archive(
    source: str | os.PathLike[str],
    store: Store | None,
    *,
    feature_flags: int = ff.DEFAULT,
    params: ChunkerParams | None = None,
    digest: str = "sha512-256",
    compression: Compression = "zstd",
    level: int = 3,
    exclude_files: bool | None = None,
    workers: int | None = None,
) -> tuple[Index, MakeStats]:
    """Chunk the catar archive of ``source`` into ``store``: the ``.caidx`` and stats.

    The archive is never written out whole: the encoder's blocks go straight to the
    chunker. The index carries the archive's feature flags (with the digest bits for
    ``digest``), as casync's ``make x.caidx DIR`` does.
    """
    flags = flags_for_digest(ff.normalize(feature_flags), digest)
    blocks = catar.encode(source, flags, block_size=BLOCK, exclude_files=exclude_files)
    return make(
        blocks,
        store,
        params=params,
        digest=digest,
        compression=compression,
        level=level,
        feature_flags=flags,
        workers=workers,
    )


def chunk_stream(
    index: Index, stores: Store | Sequence[Store], *, workers: int | None = None
) -> Iterator[bytes]:
    """The bytes an index describes, chunk by chunk in order (fetched ahead in parallel).

    Raises :class:`ChunkMissing` / :class:`CorruptChunk` naming the chunk when it gets
    there; a chunk repeated in the index is fetched again (it is read in order).
    """
    return _stream(index, stores, workers, None, None)


@dataclass
class UntarStats:
    """What an untar from an index read, and from where (pass one to :func:`untar`).

    ``chunks``, ``from_seed`` and ``from_store`` count chunks as the index lists them
    (the archive is read in order, so a repeated chunk is read again each time);
    ``from_seed + from_store == chunks`` after a complete untar. ``seeds`` is how many
    seeds were chunked, ``seed_bytes`` the archive bytes chunked from them,
    ``seed_chunks`` the distinct chunks of the index they held. ``stale_seed_chunks``
    counts reads of a held chunk whose bytes no longer hashed to its id (read from the
    stores instead). ``skipped_seeds`` says why the existing target could not serve as
    a seed, when it could not. All zero for a ``.catar`` source.
    """

    chunks: int = 0
    from_seed: int = 0
    from_store: int = 0
    bytes_from_seed: int = 0
    bytes_from_store: int = 0
    seeds: int = 0
    seed_bytes: int = 0
    seed_chunks: int = 0
    stale_seed_chunks: int = 0
    skipped_seeds: list[str] = field(default_factory=list)


def untar(
    source: str | os.PathLike[str] | Index | Iterable[bytes],
    target: str | os.PathLike[str],
    stores: Store | Sequence[Store] = (),
    *,
    seeds: Sequence[str | os.PathLike[str]] = (),
    seed_output: bool = True,
    stats: UntarStats | None = None,
    restore_owner: bool | None = None,
    workers: int | None = None,
) -> catar.CatarEntry:
    """Recreate the tree of an archive at ``target``, replacing what is there; the root's
    entry is returned.

    ``source`` is a ``.catar`` file, a ``.caidx`` (path or :class:`Index`, read from
    ``stores``), or an iterable of archive bytes.

    For an index, each chunk is taken from a **seed** when one holds it, else from
    ``stores`` in order. ``seeds`` are directories (a previous version of the tree,
    say) or files (a ``.catar`` of one). A directory is encoded with the index's
    feature flags (so a file with the same content and metadata gives the same bytes)
    and cut with the index's chunk sizes; the chunks the index wants are hashed in the
    worker pool and copied into an unlinked temporary file in ``target``'s parent
    directory (at most one copy of each distinct chunk of the index: disk, not memory;
    the file is gone when the untar returns).
    A file seed is cut the same way and its chunks are read from it in place. Every
    chunk taken from a seed is hashed again when read: one that no longer matches (the
    spill file or the seed file changed) is fetched from the stores instead, never
    written wrong. Seeding stops once every chunk of the index has been found.

    With ``seed_output`` (the default, as casync's ``--seed-output=yes``) an existing
    ``target`` directory is a seed too, chunked before any seed of ``seeds``: updating
    a tree fetches only what changed, at the cost of reading the old tree once. Pass
    ``seed_output=False`` to skip that read when the old tree shares nothing. Seeds
    are ignored for a ``.catar`` source.

    ``stats``, when given, is filled in with where the chunks came from
    (:class:`UntarStats`).

    Raises :class:`InvalidArchive`, :class:`ChunkMissing` (naming the chunk no seed and
    no store holds), :class:`CorruptChunk`, :class:`InvalidIndex` naming what is
    wrong; :class:`StorageError` naming a seed of ``seeds`` that cannot be read or
    encoded (missing, unreadable files, ids the index's flags cannot hold), or when the
    spill file cannot be written. An existing target that cannot be read as a seed is
    skipped instead (noted in ``stats.skipped_seeds``), as it is about to be replaced.
    On any failure ``target`` is exactly as it was before and no temporary file is
    left behind.
    """
    counts = stats if stats is not None else UntarStats()
    final = Path(target)
    with contextlib.ExitStack() as resources:
        index: Index | None = None
        stream: Iterable[bytes]
        if isinstance(source, Index):
            index = source
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.suffix == ".caidx":
                index = Index.read(path)
            else:
                try:
                    opened = resources.enter_context(open(path, "rb"))
                except OSError as exc:
                    raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
                stream = iter(lambda: opened.read(BLOCK), b"")
        else:
            stream = source
        if index is not None:
            counts.chunks = len(index)
            held = _gather_seeds(index, final, seeds, seed_output, workers, counts)
            if held is not None:
                resources.callback(held.close)
            chunks = _stream(index, stores, workers, held, counts)
            # closed (its pool's reads finished) before the seeds' files are
            resources.callback(chunks.close)
            stream = chunks
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        try:
            root = catar.extract(stream, tmp, restore_owner=restore_owner)
            _swap_in(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
    return root


# -- seeds --------------------------------------------------------------------------------

_FROM_STORE, _FROM_SEED, _STALE_SEED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Held:
    """Where the bytes of a chunk found in a seed are: ``size`` bytes at ``offset``."""

    fd: int
    offset: int
    size: int


class _SeedUnreadable(StorageError):
    """A seed that cannot be read or encoded (the message names it)."""


class _SeedChunks:
    """The chunks of one index found in seeds, and where their bytes are held.

    A directory seed's wanted chunks are copied into a spill file (created unlinked in
    ``spill_dir`` on first use); a file seed's stay in the file, kept open. :meth:`read`
    hashes the bytes again. ``held`` is filled while seeding (by the pool's tasks, under
    the lock), then only read.
    """

    def __init__(self, index: Index, spill_dir: Path, workers: int | None) -> None:
        self.digest = index.digest
        self.flags = index.feature_flags
        self.params = ChunkerParams(index.min_size, index.avg_size, index.max_size)
        self.workers = workers
        self.spill_dir = spill_dir
        self.wanted: dict[bytes, int] = {chunk.id: chunk.size for chunk in index}
        self.held: dict[bytes, _Held] = {}
        self._lock = threading.Lock()
        self._spill: IO[bytes] | None = None
        self._spill_end = 0
        self._fds: list[int] = []

    @property
    def complete(self) -> bool:
        """Whether every distinct chunk of the index has been found."""
        return len(self.held) >= len(self.wanted)

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def add_tree(self, path: Path) -> int:
        """Chunk the catar stream of the directory ``path``; the bytes chunked.

        Raises :class:`_SeedUnreadable` when the tree cannot be read or encoded,
        :class:`StorageError` when the spill file cannot be created or written.
        """
        spill = self._spill_fd()
        make_id = hasher(self.digest)
        blocks = _seed_blocks(path, self.flags)
        scanned = 0
        try:
            with OrderedPool[int](self.workers) as pool:
                for views in _stream_stretches(blocks, self.params):
                    pool.submit(self._take, views, make_id, spill)
                    scanned += sum(pool.results())
                    if self.complete:
                        break
                scanned += sum(pool.drain())
        finally:
            blocks.close()
        return scanned

    def _take(
        self, views: list[memoryview], make_id: Callable[[bytes | memoryview], bytes], spill: int
    ) -> int:
        """Hash a stretch of a seed's chunks; copy the wanted ones not held yet (a task)."""
        scanned = 0
        for view in views:
            size = len(view)
            scanned += size
            cid = make_id(view)
            if self.wanted.get(cid) == size:
                offset = -1
                with self._lock:
                    if cid not in self.held:
                        offset = self._spill_end
                        self._spill_end += size
                        self.held[cid] = _Held(spill, offset, size)
                if offset >= 0:
                    _pwrite_all(spill, view, offset, self.spill_dir)
            view.release()
        return scanned

    def add_file(self, path: Path) -> int:
        """Chunk the file ``path`` (a ``.catar``); its size. Its chunks are read from it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _SeedUnreadable(f"cannot read seed {path}: {exc.strerror or exc}") from None
        self._fds.append(fd)
        try:
            seed_index, _ = make(
                path, None, params=self.params, digest=self.digest, workers=self.workers
            )
        except (OSError, StorageError) as exc:
            raise _SeedUnreadable(f"cannot read seed {path}: {exc}") from None
        for chunk in seed_index:
            if self.wanted.get(chunk.id) == chunk.size and chunk.id not in self.held:
                self.held[chunk.id] = _Held(fd, chunk.start, chunk.size)
        return seed_index.blob_size

    def read(self, cid: ChunkId) -> bytes | None:
        """The held bytes of ``cid`` if they still hash to it, else ``None``."""
        held = self.held[cid]
        try:
            data = os.pread(held.fd, held.size, held.offset)
            check(data, cid, self.digest)
        except (OSError, CorruptChunk):
            return None
        return data

    def _spill_fd(self) -> int:
        """The spill file: unlinked from the start (``O_TMPFILE`` where offered)."""
        if self._spill is None:
            try:
                self._spill = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
                    dir=self.spill_dir, prefix=".aria-seed.", suffix=".tmp"
                )
            except OSError as exc:
                where, why = self.spill_dir, exc.strerror or exc
                raise StorageError(f"cannot create a seed spill file in {where}: {why}") from None
        return self._spill.fileno()


def _seed_blocks(path: Path, flags: int) -> Generator[bytes, None, None]:
    """The catar stream of a seed directory; its failures as :class:`_SeedUnreadable`."""
    try:
        yield from catar.encode(path, flags, block_size=BLOCK)
    except (OSError, ValueError, StorageError) as exc:  # ValueError: a bad .caexclude
        raise _SeedUnreadable(f"cannot encode seed {path}: {exc}") from None


def _gather_seeds(
    index: Index,
    final: Path,
    seeds: Sequence[str | os.PathLike[str]],
    seed_output: bool,
    workers: int | None,
    stats: UntarStats,
) -> _SeedChunks | None:
    """Chunk the seeds (the existing target first, as casync does); ``None`` if none."""
    order: list[Path] = []
    required: dict[str, bool] = {}
    candidates = [(final, False)] if seed_output and final.is_dir() else []
    candidates += [(Path(s), True) for s in seeds]
    for path, explicit in candidates:
        key = os.path.realpath(path)
        if key not in required:
            order.append(path)
            required[key] = explicit
        else:
            required[key] = required[key] or explicit
    if not order or len(index) == 0:
        return None
    held = _SeedChunks(index, final.parent, workers)
    try:
        for path in order:
            if held.complete:
                break
            try:
                scanned = held.add_tree(path) if path.is_dir() else held.add_file(path)
            except _SeedUnreadable as exc:
                if required[os.path.realpath(path)]:
                    raise StorageError(str(exc)) from None
                stats.skipped_seeds.append(str(exc))
                continue
            stats.seeds += 1
            stats.seed_bytes += scanned
    except BaseException:
        held.close()
        raise
    stats.seed_chunks = len(held.held)
    return held


def _stream(
    index: Index,
    stores: Store | Sequence[Store],
    workers: int | None,
    seeds: _SeedChunks | None,
    stats: UntarStats | None,
) -> Generator[bytes, None, None]:
    """The chunks of ``index`` in order: from ``seeds`` when they hold one, else fetched."""
    store_list = [stores] if isinstance(stores, Store) else list(stores)
    digest = index.digest

    def account(results: Iterator[tuple[bytes, int]]) -> Iterator[bytes]:
        for data, origin in results:
            if stats is not None:
                if origin == _FROM_SEED:
                    stats.from_seed += 1
                    stats.bytes_from_seed += len(data)
                else:
                    stats.from_store += 1
                    stats.bytes_from_store += len(data)
                    stats.stale_seed_chunks += origin == _STALE_SEED
            yield data

    with OrderedPool[tuple[bytes, int]](workers) as pool:
        for chunk in index:
            pool.submit(_fetch, store_list, chunk.id, digest, chunk.size, seeds)
            yield from account(pool.results())
        yield from account(pool.drain())


def _fetch(
    stores: list[Store], cid: ChunkId, digest: str, size: int, seeds: _SeedChunks | None
) -> tuple[bytes, int]:
    """A chunk's bytes and where they came from (a pool task)."""
    origin = _FROM_STORE
    if seeds is not None and cid in seeds.held:
        data = seeds.read(cid)
        if data is not None:
            return data, _FROM_SEED
        origin = _STALE_SEED
    try:
        return fetch_chunk(stores, cid, digest, size=size), origin
    except ChunkMissing as exc:
        if origin != _STALE_SEED:
            raise
        raise ChunkMissing(
            f"{exc}; a seed held it but its bytes no longer match", chunk_id=exc.chunk_id
        ) from None


def _pwrite_all(fd: int, data: memoryview, offset: int, where: Path) -> None:
    view = data
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n
    except OSError as exc:
        raise StorageError(
            f"cannot write the seed spill file in {where}: {exc.strerror or exc}"
        ) from None


_RENAME_EXCHANGE = 2


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, final: Path) -> None:
    if not os.path.lexists(final):
        os.rename(new, final)
        return
    if _renameat2_exchange(new, final):
        _remove(new)  # now the old tree
        return
    old = final.with_name(f".{final.name}.{secrets.token_hex(6)}.old")
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
