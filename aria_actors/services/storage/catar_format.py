"""The catar wire format: object types, record layouts, limits, and the goodbye table.

A catar is a flat sequence of objects, each a 16-byte header (``size``, ``type``; both
little-endian 64-bit, ``size`` counting the header) and a body. A node is serialized as::

    ENTRY (feature flags, mode, entry flags, uid, gid, mtime in ns)
    USER, GROUP                      names, when USER_NAMES is on and the id has one
    XATTR ...                        user.* and trusted.* attributes, sorted by name
    ACL_USER ..., ACL_GROUP ...      sorted; ACL_GROUP_OBJ; ACL_DEFAULT; ACL_DEFAULT_USER ...;
    ACL_DEFAULT_GROUP ...
    SELINUX, FCAPS, QUOTA_PROJID
    PAYLOAD (header, then st_size bytes) | SYMLINK | DEVICE   by file type; none for fifos
                                                              and sockets
    for a directory: (FILENAME <node>)* sorted by name, then GOODBYE

GOODBYE holds one item per directory entry (offset back from the GOODBYE to the
FILENAME, size of FILENAME + node, SipHash-2-4 of the name) laid out as an implicit
binary search tree over (hash, offset), then a tail item (offset back to the directory's
ENTRY, the GOODBYE's size again, a marker).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

from .siphash import siphash24

ENTRY: Final = 0x1396FABCEA5BBB51
USER: Final = 0xF453131AAEEACCB3
GROUP: Final = 0x25EB6AC969396A52
XATTR: Final = 0xB8157091F80BC486
ACL_USER: Final = 0x297DC88B2EF12FAF
ACL_GROUP: Final = 0x36F2ACB56CB3DD0B
ACL_GROUP_OBJ: Final = 0x23047110441F38F3
ACL_DEFAULT: Final = 0xFE3EEDA6823C8CD0
ACL_DEFAULT_USER: Final = 0xBDF03DF9BD010A91
ACL_DEFAULT_GROUP: Final = 0xA0CB1168782D1F51
FCAPS: Final = 0xF7267DB0AFED0629
QUOTA_PROJID: Final = 0x161BAF2D8772A72B
SELINUX: Final = 0x46FAF0602FD26C59
SYMLINK: Final = 0x664A6FB6830E0D6C
DEVICE: Final = 0xAC3DACE369DFE643
PAYLOAD: Final = 0x8B9E1D93D6DCFFC9
FILENAME: Final = 0x6DBB6EBCB3161F0B
GOODBYE: Final = 0xDFD35C5E8327C403
GOODBYE_TAIL_MARKER: Final = 0x57446FA533702943

TYPE_NAMES: Final[dict[int, str]] = {
    ENTRY: "ENTRY",
    USER: "USER",
    GROUP: "GROUP",
    XATTR: "XATTR",
    ACL_USER: "ACL_USER",
    ACL_GROUP: "ACL_GROUP",
    ACL_GROUP_OBJ: "ACL_GROUP_OBJ",
    ACL_DEFAULT: "ACL_DEFAULT",
    ACL_DEFAULT_USER: "ACL_DEFAULT_USER",
    ACL_DEFAULT_GROUP: "ACL_DEFAULT_GROUP",
    FCAPS: "FCAPS",
    QUOTA_PROJID: "QUOTA_PROJID",
    SELINUX: "SELINUX",
    SYMLINK: "SYMLINK",
    DEVICE: "DEVICE",
    PAYLOAD: "PAYLOAD",
    FILENAME: "FILENAME",
    GOODBYE: "GOODBYE",
}

HEADER: Final = struct.Struct("<QQ")
HEADER_SIZE: Final = HEADER.size
#: ENTRY: header, feature_flags, mode, flags, uid, gid, mtime
ENTRY_STRUCT: Final = struct.Struct("<QQQQQQQQ")
ENTRY_SIZE: Final = ENTRY_STRUCT.size
#: ACL_USER / ACL_GROUP (and the default variants): header, id, permissions, [name NUL]
ACL_ID_STRUCT: Final = struct.Struct("<QQQQ")
ACL_ID_SIZE: Final = ACL_ID_STRUCT.size
ACL_GROUP_OBJ_STRUCT: Final = struct.Struct("<QQQ")
ACL_DEFAULT_STRUCT: Final = struct.Struct("<QQQQQQ")
QUOTA_PROJID_STRUCT: Final = struct.Struct("<QQQ")
DEVICE_STRUCT: Final = struct.Struct("<QQQQ")
GOODBYE_ITEM: Final = struct.Struct("<QQQ")
GOODBYE_ITEM_SIZE: Final = GOODBYE_ITEM.size

# The largest objects casync writes (it reads no larger ones either).
USER_SIZE_MAX: Final = HEADER_SIZE + 256
GROUP_SIZE_MAX: Final = HEADER_SIZE + 256
XATTR_SIZE_MAX: Final = HEADER_SIZE + 255 + 1 + 64 * 1024
ACL_USER_SIZE_MAX: Final = ACL_ID_SIZE + 256
ACL_GROUP_SIZE_MAX: Final = ACL_ID_SIZE + 256
FCAPS_SIZE_MAX: Final = HEADER_SIZE + 64 * 1024
SELINUX_SIZE_MAX: Final = HEADER_SIZE + 4096
SYMLINK_SIZE_MAX: Final = HEADER_SIZE + 4096
FILENAME_SIZE_MAX: Final = HEADER_SIZE + 256

ACL_READ: Final = 4
ACL_WRITE: Final = 2
ACL_EXECUTE: Final = 1

#: casync keeps at most this many nested nodes (the root included) on its stack
MAX_DEPTH: Final = 64

UINT64_MAX: Final = 2**64 - 1


def header(type_: int, size: int) -> bytes:
    """A 16-byte object header."""
    return HEADER.pack(size, type_)


def type_name(type_: int) -> str:
    """The object type's name, or its hex value when unknown."""
    return TYPE_NAMES.get(type_, f"unknown type {type_:#018x}")


class GoodbyeItem(NamedTuple):
    """One directory entry as the goodbye table records it (offsets in the archive)."""

    hash: int
    start: int  # where the entry's FILENAME begins
    end: int  # where the entry's node ends (the next FILENAME or the GOODBYE)


def filename_hash(name: bytes) -> int:
    """The goodbye-table hash of a file name: SipHash-2-4 under casync's key."""
    return siphash24(name)


def bst_order(count: int) -> list[int]:
    """The positions of ``count`` sorted items in casync's array-embedded search tree.

    ``result[i]`` is the index (into the sorted items) of the item stored at slot ``i``:
    slot 0 is the root, the children of slot ``i`` are ``2i+1`` (smaller) and ``2i+2``
    (larger), and the tree is complete, its last level filled from the left. This is
    casync's ``ca_make_bst``.
    """
    out = [0] * count

    def place(first: int, n: int, level: int, slot: int) -> None:
        if n == 0:
            return
        half = 1 << (level - 1)  # items a full tree of this height has on its last level
        full_left = half - 1 + half // 2
        k = half - 1 if n >= full_left else half - 1 - (full_left - n)
        out[slot] = first + k
        place(first, k, level - 1, 2 * slot + 1)
        place(first + k + 1, n - k - 1, level - 1, 2 * slot + 2)

    if count:
        place(0, count, count.bit_length(), 0)
    return out


def goodbye_record(items: Sequence[GoodbyeItem], goodbye_offset: int, entry_offset: int) -> bytes:
    """The GOODBYE object of a directory whose ENTRY is at ``entry_offset``.

    ``items`` are the directory's entries in archive order; ``goodbye_offset`` is where the
    GOODBYE object itself begins. Items are sorted by (hash, offset) and laid out with
    :func:`bst_order`.
    """
    size = HEADER_SIZE + GOODBYE_ITEM_SIZE * (len(items) + 1)
    ordered = sorted(items, key=lambda item: (item.hash, item.start))
    parts = [header(GOODBYE, size)]
    for index in bst_order(len(ordered)):
        item = ordered[index]
        parts.append(
            GOODBYE_ITEM.pack(goodbye_offset - item.start, item.end - item.start, item.hash)
        )
    parts.append(GOODBYE_ITEM.pack(goodbye_offset - entry_offset, size, GOODBYE_TAIL_MARKER))
    return b"".join(parts)


def xattr_name_is_valid(name: bytes) -> bool:
    """casync's test for an xattr name: a dot, not first nor last, at most 255 bytes."""
    dot = name.find(b".")
    return 0 < dot < len(name) - 1 and len(name) <= 255


def xattr_name_stored(name: bytes) -> bool:
    """Whether casync stores this xattr as an XATTR record: valid ``user.*``/``trusted.*``."""
    return xattr_name_is_valid(name) and (name.startswith((b"user.", b"trusted.")))
