"""Chunk files: compression on the way into a store, decompression and checking out.

A stored chunk (``.cacnk``) is the chunk's bytes compressed with zstd (level 3, as casync
writes them). Reading also takes gzip and xz chunks, told apart by their magic bytes as
casync does, so stores written with ``casync --compression=gzip|xz`` can be read.

Every read is checked: the bytes must decompress within ``max_size`` and hash to the
chunk's id, or :class:`CorruptChunk` names the chunk and what is wrong. Compressor and
decompressor objects are kept per thread, so the functions are safe (and parallel: zstd,
zlib and lzma release the GIL) from worker threads.
"""

from __future__ import annotations

import gzip
import lzma
import threading
import zlib
from typing import Final, Literal

import zstandard

from .errors import CorruptChunk, UnsupportedFeature
from .ids import ChunkId, hasher

Compression = Literal["zstd", "gzip", "xz", "none"]

#: casync refuses chunks above this size (``CA_CHUNK_SIZE_LIMIT_MAX``); so do we.
CHUNK_SIZE_LIMIT: Final = 128 * 1024 * 1024

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC: Final = b"\x1f\x8b"
XZ_MAGIC: Final = b"\xfd7zXZ\x00"

_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zc", None)
    if cache is None:
        cache = _local.zc = {}
    ctx = cache.get(level)
    if ctx is None:
        ctx = cache[level] = zstandard.ZstdCompressor(level=level)
    return ctx


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    ctx: zstandard.ZstdDecompressor | None = getattr(_local, "zd", None)
    if ctx is None:
        ctx = _local.zd = zstandard.ZstdDecompressor()
    return ctx


def compress(
    data: bytes | memoryview, *, compression: Compression = "zstd", level: int = 3
) -> bytes:
    """The stored form of a chunk's bytes."""
    if compression == "zstd":
        return _zstd_compressor(level).compress(data)
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    if compression == "none":
        return bytes(data)
    raise UnsupportedFeature(f"unknown chunk compression {compression!r}")


def detect(blob: bytes | memoryview) -> Compression | None:
    """The compression of a stored chunk by its magic bytes, or ``None`` when unknown."""
    head = bytes(blob[:6])
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


def _unzstd(blob: bytes | memoryview, name: str, max_size: int) -> bytes:
    dctx = _zstd_decompressor()
    size = zstandard.frame_content_size(blob)
    if size > max_size:
        raise CorruptChunk(f"chunk {name}: claims {size} bytes, over {max_size}", chunk_id=name)
    if size >= 0:
        out = dctx.decompress(blob)
        if len(out) != size:
            raise CorruptChunk(f"chunk {name}: zstd frame size mismatch", chunk_id=name)
        return out
    # no size in the frame (casync writes streams): read with a cap, never unbounded
    parts: list[bytes] = []
    total = 0
    with dctx.stream_reader(blob, read_across_frames=False) as reader:
        while True:
            part = reader.read(1 << 20)
            if not part:
                break
            total += len(part)
            if total > max_size:
                break
            parts.append(part)
    if total > max_size:
        raise CorruptChunk(
            f"chunk {name}: decompresses to more than {max_size} bytes", chunk_id=name
        )
    # a truncated stream yields a short output here; the id check that follows catches it
    return b"".join(parts)


def decompress(
    blob: bytes | memoryview, chunk_id: ChunkId | str, *, max_size: int = CHUNK_SIZE_LIMIT
) -> bytes:
    """Decompress a stored chunk; refuses output above ``max_size``.

    Raises :class:`CorruptChunk` (naming the chunk) when the bytes are not a zstd, gzip
    or xz stream, are truncated or damaged, or inflate past ``max_size``.
    """
    kind = detect(blob)
    name = str(chunk_id)
    try:
        if kind == "zstd":
            out = _unzstd(blob, name, max_size)
        elif kind == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(blob, max_size + 1)
            if not d.eof:
                raise CorruptChunk(f"chunk {name}: truncated gzip stream", chunk_id=name)
        elif kind == "xz":
            x = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            out = x.decompress(blob, max_size + 1)
            if not x.eof:
                raise CorruptChunk(f"chunk {name}: truncated xz stream", chunk_id=name)
        else:
            raise CorruptChunk(
                f"chunk {name}: not a zstd, gzip or xz stream (starts {bytes(blob[:6]).hex()})",
                chunk_id=name,
            )
    except CorruptChunk:
        raise
    except (zstandard.ZstdError, zlib.error, lzma.LZMAError, EOFError) as exc:
        raise CorruptChunk(f"chunk {name}: {kind} data is damaged: {exc}", chunk_id=name) from None
    if len(out) > max_size:
        raise CorruptChunk(
            f"chunk {name}: decompresses to more than {max_size} bytes", chunk_id=name
        )
    return out


def check(data: bytes | memoryview, chunk_id: ChunkId, digest: str = "sha512-256") -> None:
    """Raise :class:`CorruptChunk` unless ``data`` hashes to ``chunk_id`` under ``digest``."""
    got = hasher(digest)(data)
    if got != chunk_id:
        raise CorruptChunk(
            f"chunk {chunk_id}: its bytes hash to {got.hex()} ({digest})",
            chunk_id=str(chunk_id),
        )


def open_chunk(
    blob: bytes | memoryview,
    chunk_id: ChunkId,
    digest: str = "sha512-256",
    *,
    max_size: int = CHUNK_SIZE_LIMIT,
) -> bytes:
    """Decompress and check a stored chunk; the chunk's bytes, or :class:`CorruptChunk`."""
    data = decompress(blob, chunk_id, max_size=max_size)
    check(data, chunk_id, digest)
    return data
