"""casync's content-defined chunker: where a byte stream is cut into chunks.

The cuts are exactly casync's, so indexes made here share chunks with indexes made by
``casync make`` with the same chunk sizes (the tests compare both on the same files). The
rule, for a chunk that starts at byte 0:

* **fixed-size mode** (``min_size == avg_size == max_size``): every chunk has exactly that
  many bytes;
* **otherwise** the chunk is ``L`` bytes long for the smallest ``L >= max(min_size, 48)``
  such that ``L >= max_size`` or ``buzhash(bytes L-48 .. L-1) % d == d - 1``, where the
  buzhash is casync's over a 48-byte window and ``d`` (:attr:`ChunkerParams.discriminator`)
  is derived from ``avg_size`` by casync's formula.

The last chunk of a stream is whatever is left when it ends. An empty stream has no
chunks.

The scanning is done by a C extension (``_chunker.c``, built by ``hatch_build.py`` on
install) that releases the GIL, so threads chunking different streams run in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from . import _chunker
from ._chunker import buzhash, buzhash_roll

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CHUNK_SIZE_LIMIT_MAX",
    "CHUNK_SIZE_LIMIT_MIN",
    "DEFAULT_AVG",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MAX",
    "DEFAULT_MIN",
    "DEFAULT_PARAMS",
    "WINDOW_SIZE",
    "Chunker",
    "ChunkerParams",
    "Readable",
    "boundaries",
    "buzhash",
    "buzhash_roll",
    "iter_chunks",
]

#: casync's default chunk sizes (``--chunk-size=16K:64K:256K``).
DEFAULT_MIN: Final = 16 * 1024
DEFAULT_AVG: Final = 64 * 1024
DEFAULT_MAX: Final = 256 * 1024

#: The bytes the rolling hash looks at.
WINDOW_SIZE: Final[int] = _chunker.WINDOW_SIZE
#: casync's limits on every chunk size setting (``CA_CHUNK_SIZE_LIMIT_MIN/MAX``).
CHUNK_SIZE_LIMIT_MIN: Final[int] = _chunker.CHUNK_SIZE_LIMIT_MIN
CHUNK_SIZE_LIMIT_MAX: Final[int] = _chunker.CHUNK_SIZE_LIMIT_MAX

#: How much :func:`iter_chunks` reads at a time.
DEFAULT_BLOCK_SIZE: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """The chunk sizes: ``casync --chunk-size=MIN:AVG:MAX``. Immutable; checked when made.

    :raises TypeError: a size that is not an ``int``.
    :raises ValueError: sizes casync refuses — outside ``1 .. 128 MiB``, or not
        ``min_size <= avg_size <= max_size`` — or ``max_size`` below the 48-byte window
        without fixed-size mode. (casync's chunker accepts the last, but then cuts
        48-byte chunks, larger than ``max_size``, and ``casync make`` fails writing them.)
        The message names the offending value.
    """

    min_size: int = DEFAULT_MIN
    avg_size: int = DEFAULT_AVG
    max_size: int = DEFAULT_MAX

    def __post_init__(self) -> None:
        for name in ("min_size", "avg_size", "max_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        _chunker.discriminator(self.min_size, self.avg_size, self.max_size)  # casync's checks
        if not self.fixed and self.max_size < WINDOW_SIZE:
            raise ValueError(
                f"max_size={self.max_size} is below the {WINDOW_SIZE}-byte hash window: casync "
                f"would cut {WINDOW_SIZE}-byte chunks and refuse them (for fixed-size chunks "
                "make min_size, avg_size and max_size equal)"
            )

    @classmethod
    def from_avg(cls, avg_size: int) -> ChunkerParams:
        """The sizes casync picks for ``--chunk-size=AVG``: ``avg/4`` (at least 1), ``avg``,
        ``avg*4`` (at most 128 MiB)."""
        if not isinstance(avg_size, int) or isinstance(avg_size, bool):
            raise TypeError(f"avg_size must be an int, not {type(avg_size).__name__}")
        if not CHUNK_SIZE_LIMIT_MIN <= avg_size <= CHUNK_SIZE_LIMIT_MAX:
            raise ValueError(
                f"avg_size={avg_size} is outside casync's chunk size limits "
                f"{CHUNK_SIZE_LIMIT_MIN}..{CHUNK_SIZE_LIMIT_MAX}"
            )
        return cls(
            max(avg_size // 4, CHUNK_SIZE_LIMIT_MIN),
            avg_size,
            min(avg_size * 4, CHUNK_SIZE_LIMIT_MAX),
        )

    @property
    def fixed(self) -> bool:
        """Fixed-size mode: every chunk but the last has exactly ``avg_size`` bytes."""
        return self.min_size == self.avg_size == self.max_size

    @property
    def discriminator(self) -> int:
        """The ``d`` of the cut test ``hash % d == d - 1``: casync's
        ``avg / (1.33237515 - 1.42888852e-7 * avg)`` truncated, clamped to the min/max."""
        return _chunker.discriminator(self.min_size, self.avg_size, self.max_size)

    @property
    def spec(self) -> str:
        """The sizes as casync's ``--chunk-size=`` value, ``MIN:AVG:MAX`` in bytes."""
        return f"{self.min_size}:{self.avg_size}:{self.max_size}"


DEFAULT_PARAMS: Final = ChunkerParams()


class Chunker:
    """The chunker over one stream fed in pieces of any size.

    Where the cuts fall does not depend on how the stream is split into pieces. Feeding
    releases the GIL for large pieces; one Chunker must not be fed from two threads at
    once (the second call raises ``RuntimeError``), but separate Chunkers run in parallel.
    """

    __slots__ = ("_c", "_params")

    def __init__(self, params: ChunkerParams = DEFAULT_PARAMS) -> None:
        self._params = params
        self._c = _chunker.Chunker(params.min_size, params.avg_size, params.max_size)

    @property
    def params(self) -> ChunkerParams:
        return self._params

    @property
    def position(self) -> int:
        """Bytes fed since the Chunker was made or reset."""
        return self._c.position

    @property
    def pending(self) -> int:
        """Bytes of the chunk under way (fed, not yet ended by a cut). When the stream
        ends, these are its last chunk."""
        return self._c.pending

    def feed(self, data: Buffer) -> list[int]:
        """Scan the next piece of the stream; the offsets **relative to** ``data`` just past
        the last byte of every chunk that ends in it, ascending.

        ``data`` is any contiguous buffer (bytes, bytearray, memoryview, mmap), read in
        place without a copy; do not modify it from another thread meanwhile.

        :raises BufferError: ``data`` is not contiguous.
        :raises RuntimeError: the Chunker is being fed by another thread.
        """
        return self._c.feed(data)

    def reset(self) -> None:
        """Start over: the next byte fed begins a new stream."""
        self._c.reset()

    def __repr__(self) -> str:
        return f"Chunker({self._params!r}, position={self.position}, pending={self.pending})"


def boundaries(data: Buffer, params: ChunkerParams = DEFAULT_PARAMS) -> list[int]:
    """The end offset of every chunk of ``data``, ascending; the last is ``len(data)``
    (these are the offsets a ``.caibx`` lists). ``[]`` for empty data."""
    chunker = _chunker.Chunker(params.min_size, params.avg_size, params.max_size)
    ends = chunker.feed(data)
    if chunker.pending:
        ends.append(chunker.position)
    return ends


class Readable(Protocol):
    """What :func:`iter_chunks` reads from: a binary file object."""

    def read(self, size: int, /) -> bytes: ...


def iter_chunks(
    source: str | os.PathLike[str] | Readable,
    params: ChunkerParams = DEFAULT_PARAMS,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[tuple[int, bytes]]:
    """``(offset, chunk bytes)`` for every chunk of a file (a path, opened and closed
    here) or of a binary file object (read from its current position to EOF, not closed).

    Reads ``block_size`` bytes at a time, so memory stays around ``block_size`` plus one
    chunk. Each chunk is its own ``bytes`` (one copy of the data).

    :raises ValueError: ``block_size`` is not positive.
    :raises OSError: the file cannot be opened or read.
    """
    if block_size <= 0:
        raise ValueError(f"block_size={block_size} must be positive")
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield from _chunks_of(file, params, block_size)
    else:
        yield from _chunks_of(source, params, block_size)


def _chunks_of(
    file: Readable, params: ChunkerParams, block_size: int
) -> Iterator[tuple[int, bytes]]:
    chunker = _chunker.Chunker(params.min_size, params.avg_size, params.max_size)
    carry = bytearray()  # the chunk under way, from earlier blocks
    offset = 0
    while block := file.read(block_size):
        start = 0
        for end in chunker.feed(block):
            if carry:
                carry += memoryview(block)[start:end]
                chunk = bytes(carry)
                carry.clear()
            else:
                chunk = block[start:end]
            yield offset, chunk
            offset += len(chunk)
            start = end
        carry += memoryview(block)[start:]
    if carry:
        yield offset, bytes(carry)
