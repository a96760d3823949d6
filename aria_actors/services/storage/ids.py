"""Chunk ids and the digests that make them.

A chunk's id is the digest of its *uncompressed* bytes: SHA512/256 by default (casync's
``CA_FORMAT_SHA512_256`` feature flag), SHA256 when that flag is clear, or BLAKE3 for
Aria-only stores. Ids are 32 bytes and print as 64 lower-case hex digits, the name of
the chunk's file in a store (``xxxx/<id>.cacnk``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final, Literal

import blake3

from .errors import UnsupportedFeature

ID_SIZE: Final = 32

Digest = Literal["sha512-256", "sha256", "blake3"]
DIGESTS: Final[tuple[Digest, ...]] = ("sha512-256", "sha256", "blake3")


def _sha512_256(data: bytes | memoryview) -> bytes:
    return hashlib.new("sha512_256", data).digest()


def _sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _blake3(data: bytes | memoryview) -> bytes:
    return blake3.blake3(data).digest()


_HASHERS: Final[dict[str, Callable[[bytes | memoryview], bytes]]] = {
    "sha512-256": _sha512_256,
    "sha256": _sha256,
    "blake3": _blake3,
}


def hasher(digest: str) -> Callable[[bytes | memoryview], bytes]:
    """The function that makes a chunk id with ``digest``.

    Raises :class:`UnsupportedFeature` for a name not in :data:`DIGESTS`.
    The hashlib functions release the GIL on large inputs, so hashing in worker
    threads uses both cores.
    """
    try:
        return _HASHERS[digest]
    except KeyError:
        raise UnsupportedFeature(
            f"unknown chunk digest {digest!r}; known: {', '.join(DIGESTS)}"
        ) from None


class ChunkId(bytes):
    """A 32-byte chunk id (a ``bytes``), printed as hex."""

    __slots__ = ()

    def __new__(cls, value: bytes | bytearray | memoryview) -> ChunkId:
        raw = bytes(value)
        if len(raw) != ID_SIZE:
            raise ValueError(f"a chunk id is {ID_SIZE} bytes, not {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def from_hex(cls, text: str) -> ChunkId:
        """Parse 64 hex digits; ``ValueError`` names what is wrong."""
        if len(text) != 2 * ID_SIZE:
            raise ValueError(f"a chunk id is {2 * ID_SIZE} hex digits, not {len(text)}: {text!r}")
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ValueError(f"not a hex chunk id: {text!r}") from None

    @classmethod
    def of(cls, data: bytes | memoryview, digest: str = "sha512-256") -> ChunkId:
        """The id of ``data`` under ``digest``."""
        return cls(hasher(digest)(data))

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"ChunkId({self.hex()})"
