"""SipHash-2-4 (Aumasson and Bernstein), the 64-bit keyed hash of catar goodbye tables.

Pure Python: it hashes file names (at most 255 bytes), a few per directory entry.
"""

from __future__ import annotations

from typing import Final

_MASK: Final = 0xFFFFFFFFFFFFFFFF

#: the key casync hashes file names with for goodbye tables (CA_FORMAT_GOODBYE_HASH_KEY)
GOODBYE_HASH_KEY: Final = bytes.fromhex("b3841d0f2b447485c12ec2d130ed3627")


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(data: bytes, key: bytes = GOODBYE_HASH_KEY) -> int:
    """The SipHash-2-4 of ``data`` under the 16-byte ``key``, as an unsigned 64-bit int.

    Raises ``ValueError`` when the key is not 16 bytes.
    """
    if len(key) != 16:
        raise ValueError(f"a SipHash key is 16 bytes, not {len(key)}")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    length = len(data)
    whole = length - length % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        rounds(2)
        v0 ^= m
    # the last block: the remaining bytes, with the length's low byte on top
    last = int.from_bytes(data[whole:], "little") | ((length & 0xFF) << 56)
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3
