"""Directory trees: ``tar`` (a tree to a ``.catar``, or chunked into a store with a
``.caidx``) and ``untar`` (back to a tree), plus reading a chunked archive as a stream.

An untar builds the tree in a hidden temporary directory beside the target and swaps
it in only when the archive has been read to its end, so a bad archive, a missing or
corrupt chunk leaves the previous target as it was (the swap is an atomic
``renameat2(RENAME_EXCHANGE)`` where the kernel offers it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from . import catar
from . import flags as ff
from .chunker import ChunkerParams
from .chunks import Compression
from .errors import StorageError
from .ids import ChunkId
from .index import Index, flags_for_digest
from .make import MakeStats, make
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
    store_list = [stores] if isinstance(stores, Store) else list(stores)
    digest = index.digest

    with OrderedPool[bytes](workers) as pool:
        for chunk in index:
            pool.submit(_fetch_sized, store_list, chunk.id, digest, chunk.size)
            yield from pool.results()
        yield from pool.drain()


def _fetch_sized(stores: list[Store], cid: ChunkId, digest: str, size: int) -> bytes:
    return fetch_chunk(stores, cid, digest, size=size)


def untar(
    source: str | os.PathLike[str] | Index | Iterable[bytes],
    target: str | os.PathLike[str],
    stores: Store | Sequence[Store] = (),
    *,
    restore_owner: bool | None = None,
    workers: int | None = None,
) -> catar.CatarEntry:
    """Recreate the tree of an archive at ``target``, replacing what is there.

    ``source`` is a ``.catar`` file, a ``.caidx`` (path or :class:`Index`, read from
    ``stores``), or an iterable of archive bytes. Raises :class:`InvalidArchive`,
    :class:`ChunkMissing`, :class:`CorruptChunk`, :class:`InvalidIndex` naming what
    is wrong; then ``target`` is exactly as it was before.
    """
    stream: Iterable[bytes]
    opened = None
    if isinstance(source, Index):
        stream = chunk_stream(source, stores, workers=workers)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".caidx":
            stream = chunk_stream(Index.read(path), stores, workers=workers)
        else:
            try:
                opened = open(path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
            stream = iter(lambda: opened.read(BLOCK), b"")
    else:
        stream = source
    final = Path(target)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
    try:
        root = catar.extract(stream, tmp, restore_owner=restore_owner)
        _swap_in(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    finally:
        if opened is not None:
            opened.close()
    return root


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
