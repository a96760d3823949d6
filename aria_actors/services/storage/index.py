"""casync's index files: ``.caibx`` (a blob) and ``.caidx`` (a catar archive).

Layout (all integers little-endian 64-bit)::

    INDEX  size=48 type=0x96824d9c7b129ff9 feature_flags chunk_size_min avg max
    TABLE  size=2**64-1 type=0xe75b9e112f17417d
           items: end offset of the chunk in the blob, 32-byte chunk id   (40 bytes each)
           tail:  0, 0, index offset (48), table size, marker 0x4b4f050e5549ecd1

The feature flags say which digest made the ids (``SHA512_256`` set: SHA512/256, clear:
SHA256; Aria's ``ARIA_BLAKE3`` bit: BLAKE3, which casync refuses as an unknown flag) and,
for a ``.caidx``, which metadata the archive carries.

Reading is strict: anything but a well-formed index raises :class:`InvalidIndex` naming
the file and the offset of the first bad byte. An :class:`Index` keeps its table in two
flat arrays (ends and ids), so a million-chunk index costs ~40 MB, not a million objects.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast, overload

from . import flags
from .chunks import CHUNK_SIZE_LIMIT
from .errors import InvalidIndex
from .ids import ID_SIZE, ChunkId, Digest

FORMAT_INDEX: Final = 0x96824D9C7B129FF9
FORMAT_TABLE: Final = 0xE75B9E112F17417D
FORMAT_TABLE_TAIL_MARKER: Final = 0x4B4F050E5549ECD1

#: the digest bits of the feature flags (flags.py has them all)
FLAG_SHA512_256: Final = flags.SHA512_256
FLAG_ARIA_BLAKE3: Final = flags.ARIA_BLAKE3
#: what casync puts in a blob index made with its default flags
BLOB_INDEX_FLAGS: Final = flags.EXCLUDE_NODUMP | flags.EXCLUDE_FILE | flags.SHA512_256

HEADER_SIZE: Final = 48
TABLE_HEADER_SIZE: Final = 16
ITEM_SIZE: Final = 8 + ID_SIZE
TAIL_SIZE: Final = 40
_UINT64_MAX: Final = 2**64 - 1

_HEADER = struct.Struct("<QQQQQQ")
_TABLE_HEADER = struct.Struct("<QQ")
_TAIL = struct.Struct("<QQQQQ")


def digest_of_flags(feature_flags: int) -> Digest:
    """The chunk digest an index's feature flags name."""
    return cast(Digest, flags.digest_of(feature_flags))


def flags_for_digest(feature_flags: int, digest: str) -> int:
    """``feature_flags`` with the digest bits set for ``digest``."""
    return (feature_flags & ~(FLAG_SHA512_256 | FLAG_ARIA_BLAKE3)) | flags.flags_for_digest(digest)


@dataclass(frozen=True, slots=True)
class IndexChunk:
    """One chunk of an index: where it sits in the blob and its id."""

    start: int
    size: int
    id: ChunkId

    @property
    def end(self) -> int:
        return self.start + self.size


class Index(Sequence[IndexChunk]):
    """A parsed index: its settings and its chunk table (a sequence of :class:`IndexChunk`)."""

    __slots__ = ("_ends", "_ids", "avg_size", "feature_flags", "max_size", "min_size")

    def __init__(
        self,
        *,
        feature_flags: int = BLOB_INDEX_FLAGS,
        min_size: int = 16 * 1024,
        avg_size: int = 64 * 1024,
        max_size: int = 256 * 1024,
        ends: array[int] | None = None,
        ids: bytes | bytearray = b"",
    ) -> None:
        self.feature_flags = feature_flags
        self.min_size = min_size
        self.avg_size = avg_size
        self.max_size = max_size
        self._ends: array[int] = ends if ends is not None else array("Q")
        self._ids = bytearray(ids)
        if len(self._ids) != ID_SIZE * len(self._ends):
            raise ValueError("ids and ends of an index differ in length")

    # -- the table ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> IndexChunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[IndexChunk]: ...
    def __getitem__(self, i: int | slice) -> IndexChunk | list[IndexChunk]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("index chunk out of range")
        start = self._ends[i - 1] if i else 0
        return IndexChunk(start, self._ends[i] - start, self.chunk_id(i))

    def __iter__(self) -> Iterator[IndexChunk]:
        start = 0
        ids = self._ids
        for i, end in enumerate(self._ends):
            yield IndexChunk(start, end - start, ChunkId(ids[i * ID_SIZE : (i + 1) * ID_SIZE]))
            start = end

    def chunk_id(self, i: int) -> ChunkId:
        return ChunkId(self._ids[i * ID_SIZE : (i + 1) * ID_SIZE])

    def append(self, size: int, chunk_id: bytes) -> None:
        """Add the next chunk (``size`` bytes, id ``chunk_id``)."""
        if size <= 0:
            raise ValueError("a chunk has at least one byte")
        if len(chunk_id) != ID_SIZE:
            raise ValueError(f"a chunk id is {ID_SIZE} bytes")
        self._ends.append(self.blob_size + size)
        self._ids += chunk_id

    @property
    def blob_size(self) -> int:
        """Bytes of the blob (or archive stream) the index describes."""
        return self._ends[-1] if self._ends else 0

    @property
    def digest(self) -> Digest:
        return digest_of_flags(self.feature_flags)

    def unique_ids(self) -> set[ChunkId]:
        return {self.chunk_id(i) for i in range(len(self))}

    def locate(self, offset: int) -> int:
        """The position in the table of the chunk holding byte ``offset`` of the blob."""
        import bisect

        if not 0 <= offset < self.blob_size:
            raise IndexError(f"offset {offset} is outside the blob (0..{self.blob_size})")
        return bisect.bisect_right(self._ends, offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Index):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<Index {len(self)} chunks, {self.blob_size} bytes, {self.digest}, "
            f"sizes {self.min_size}/{self.avg_size}/{self.max_size}>"
        )

    # -- bytes -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The index file's bytes, as casync writes them."""
        n = len(self._ends)
        table_size = TABLE_HEADER_SIZE + n * ITEM_SIZE + TAIL_SIZE
        out = bytearray(HEADER_SIZE + table_size)
        _HEADER.pack_into(
            out,
            0,
            HEADER_SIZE,
            FORMAT_INDEX,
            self.feature_flags,
            self.min_size,
            self.avg_size,
            self.max_size,
        )
        _TABLE_HEADER.pack_into(out, HEADER_SIZE, _UINT64_MAX, FORMAT_TABLE)
        pos = HEADER_SIZE + TABLE_HEADER_SIZE
        ids = self._ids
        for i, end in enumerate(self._ends):
            struct.pack_into("<Q", out, pos, end)
            out[pos + 8 : pos + ITEM_SIZE] = ids[i * ID_SIZE : (i + 1) * ID_SIZE]
            pos += ITEM_SIZE
        _TAIL.pack_into(out, pos, 0, 0, HEADER_SIZE, table_size, FORMAT_TABLE_TAIL_MARKER)
        return bytes(out)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the index atomically (a temporary in the same directory, then a rename)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(self.to_bytes())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Index:
        """Read and check an index file; :class:`InvalidIndex` names what is wrong."""
        name = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InvalidIndex(f"cannot read: {exc.strerror or exc}", path=name) from None
        return cls.parse(data, name=name)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, name: str = "<index>") -> Index:
        """Parse an index file's bytes; :class:`InvalidIndex` names what is wrong and where."""

        def bad(message: str, offset: int) -> InvalidIndex:
            return InvalidIndex(message, path=name, offset=offset)

        data = memoryview(data).cast("B")
        size = len(data)
        if size < HEADER_SIZE + TABLE_HEADER_SIZE + TAIL_SIZE:
            raise bad(f"truncated: {size} bytes is shorter than any index", size)
        hsize, htype, feature_flags, cmin, cavg, cmax = _HEADER.unpack_from(data, 0)
        if htype != FORMAT_INDEX:
            raise bad(f"not a casync index (type {htype:#018x})", 8)
        if hsize != HEADER_SIZE:
            raise bad(f"index header size {hsize}, expected {HEADER_SIZE}", 0)
        if feature_flags & ~flags.KNOWN:
            raise bad(f"unknown feature flags {feature_flags & ~flags.KNOWN:#x}", 16)
        for field, value, offset in (("min", cmin, 24), ("avg", cavg, 32), ("max", cmax, 40)):
            if not 1 <= value <= CHUNK_SIZE_LIMIT:
                raise bad(f"chunk size {field} {value} outside 1..{CHUNK_SIZE_LIMIT}", offset)
        if not cmin <= cavg <= cmax:
            raise bad(f"chunk sizes {cmin}/{cavg}/{cmax} are not min <= avg <= max", 24)
        tsize, ttype = _TABLE_HEADER.unpack_from(data, HEADER_SIZE)
        if tsize != _UINT64_MAX or ttype != FORMAT_TABLE:
            raise bad("no chunk table after the index header", HEADER_SIZE)
        body = size - HEADER_SIZE - TABLE_HEADER_SIZE - TAIL_SIZE
        if body % ITEM_SIZE:
            raise bad(
                f"truncated or padded: {size} bytes is not a whole number of table items",
                size - body % ITEM_SIZE,
            )
        n = body // ITEM_SIZE
        tail_at = size - TAIL_SIZE
        zero1, zero2, index_offset, table_size, marker = _TAIL.unpack_from(data, tail_at)
        if marker != FORMAT_TABLE_TAIL_MARKER:
            raise bad("no table tail marker (the file is truncated or not an index)", tail_at + 32)
        if zero1 or zero2:
            raise bad("table tail padding is not zero", tail_at)
        if index_offset != HEADER_SIZE:
            raise bad(
                f"table tail points at offset {index_offset}, not {HEADER_SIZE}", tail_at + 16
            )
        if table_size != TABLE_HEADER_SIZE + n * ITEM_SIZE + TAIL_SIZE:
            raise bad(
                f"table tail says {table_size} bytes, the table has "
                f"{TABLE_HEADER_SIZE + n * ITEM_SIZE + TAIL_SIZE}",
                tail_at + 24,
            )
        start = HEADER_SIZE + TABLE_HEADER_SIZE
        ends = array("Q")
        ids = bytearray(n * ID_SIZE)
        previous = 0
        for i in range(n):
            pos = start + i * ITEM_SIZE
            (end,) = struct.unpack_from("<Q", data, pos)
            chunk = end - previous
            if chunk <= 0:
                raise bad(
                    f"chunk {i} ends at {end}, not after the previous chunk ({previous})", pos
                )
            if chunk > cmax:
                raise bad(f"chunk {i} is {chunk} bytes, over the index's maximum {cmax}", pos)
            ends.append(end)
            ids[i * ID_SIZE : (i + 1) * ID_SIZE] = data[pos + 8 : pos + ITEM_SIZE]
            previous = end
        return cls(
            feature_flags=feature_flags,
            min_size=cmin,
            avg_size=cavg,
            max_size=cmax,
            ends=ends,
            ids=ids,
        )
