"""casync's feature flags: what a catar archive (and its index) records about each file.

A feature-flag word is 64 bits. The low bits (``WITH_*``) say which metadata an archive
carries (uids, user names, time granularity, permissions, symlinks, devices, chattr and
FAT flags, xattrs, ACLs, SELinux labels, file capabilities, quota project ids); the top
bits say how it was made (``EXCLUDE_*``) and which digest names its chunks
(``SHA512_256``; clear means SHA256).

The names are the ones ``casync --with=NAME`` / ``--without=NAME`` accept (``best``,
``unix``, ``sec-time``, ``user-names``, ``xattrs``, ...). Composite names stand for
several bits; :func:`format_with` prints a set one name per bit, in casync's order.

A flag word is *normalized* when it has no redundant bits: nanosecond time drops the
coarser time bits, 32-bit uids drop 16-bit ones, ACLs drop permissions and read-only,
``EXCLUDE_NODUMP`` drops ``WITH_FLAG_NODUMP``, and so on (:func:`normalize`). casync
writes normalized flags into every ENTRY of an archive and into index headers, and
refuses words with bits it does not know.

:data:`ARIA_BLAKE3` is Aria's own bit, outside casync's :data:`FEATURE_FLAGS_MAX`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .errors import UnsupportedFeature

WITH_16BIT_UIDS: Final = 0x1
WITH_32BIT_UIDS: Final = 0x2
WITH_USER_NAMES: Final = 0x4
WITH_SEC_TIME: Final = 0x8
WITH_USEC_TIME: Final = 0x10
WITH_NSEC_TIME: Final = 0x20
WITH_2SEC_TIME: Final = 0x40
WITH_READ_ONLY: Final = 0x80
WITH_PERMISSIONS: Final = 0x100
WITH_SYMLINKS: Final = 0x200
WITH_DEVICE_NODES: Final = 0x400
WITH_FIFOS: Final = 0x800
WITH_SOCKETS: Final = 0x1000

# DOS file flags
WITH_FLAG_HIDDEN: Final = 0x2000
WITH_FLAG_SYSTEM: Final = 0x4000
WITH_FLAG_ARCHIVE: Final = 0x8000

# chattr(1) flags
WITH_FLAG_APPEND: Final = 0x10000
WITH_FLAG_NOATIME: Final = 0x20000
WITH_FLAG_COMPR: Final = 0x40000
WITH_FLAG_NOCOW: Final = 0x80000
WITH_FLAG_NODUMP: Final = 0x100000
WITH_FLAG_DIRSYNC: Final = 0x200000
WITH_FLAG_IMMUTABLE: Final = 0x400000
WITH_FLAG_SYNC: Final = 0x800000
WITH_FLAG_NOCOMP: Final = 0x1000000
WITH_FLAG_PROJINHERIT: Final = 0x2000000

# btrfs subvolumes
WITH_SUBVOLUME: Final = 0x4000000
WITH_SUBVOLUME_RO: Final = 0x8000000

# extended attribute metadata
WITH_XATTRS: Final = 0x10000000
WITH_ACL: Final = 0x20000000
WITH_SELINUX: Final = 0x40000000
WITH_FCAPS: Final = 0x80000000

# XFS/ext4 project quota id
WITH_QUOTA_PROJID: Final = 0x100000000

EXCLUDE_FILE: Final = 0x1000000000000000
SHA512_256: Final = 0x2000000000000000
EXCLUDE_SUBMOUNTS: Final = 0x4000000000000000
EXCLUDE_NODUMP: Final = 0x8000000000000000

ARIA_BLAKE3: Final = 0x0800000000000000
"""Aria-only: the chunk ids of this index/archive are BLAKE3 digests.

Bit 59 lies outside casync's :data:`FEATURE_FLAGS_MAX`, so casync refuses any index (and
any archive ENTRY) carrying it as "too new" (``EPROTONOSUPPORT``): a BLAKE3 store is
readable by Aria only. When set it takes precedence over :data:`SHA512_256`, which
:func:`normalize` then drops.
"""

WITH_FAT_ATTRS: Final = WITH_FLAG_HIDDEN | WITH_FLAG_SYSTEM | WITH_FLAG_ARCHIVE

WITH_CHATTR: Final = (
    WITH_FLAG_APPEND
    | WITH_FLAG_NOATIME
    | WITH_FLAG_COMPR
    | WITH_FLAG_NOCOW
    | WITH_FLAG_NODUMP
    | WITH_FLAG_DIRSYNC
    | WITH_FLAG_IMMUTABLE
    | WITH_FLAG_SYNC
    | WITH_FLAG_NOCOMP
    | WITH_FLAG_PROJINHERIT
)

WITH_BEST: Final = (
    WITH_32BIT_UIDS
    | WITH_USER_NAMES
    | WITH_NSEC_TIME
    | WITH_SYMLINKS
    | WITH_DEVICE_NODES
    | WITH_FIFOS
    | WITH_SOCKETS
    | WITH_FAT_ATTRS
    | WITH_CHATTR
    | WITH_SUBVOLUME
    | WITH_SUBVOLUME_RO
    | WITH_XATTRS
    | WITH_ACL
    | WITH_SELINUX
    | WITH_FCAPS
    | WITH_QUOTA_PROJID
)
"""The most accurate metadata casync can store."""

WITH_UNIX: Final = (
    WITH_16BIT_UIDS
    | WITH_PERMISSIONS
    | WITH_SEC_TIME
    | WITH_SYMLINKS
    | WITH_DEVICE_NODES
    | WITH_FIFOS
    | WITH_SOCKETS
)
"""Conservative classic UNIX file properties."""

WITH_FAT: Final = WITH_2SEC_TIME | WITH_READ_ONLY | WITH_FAT_ATTRS
"""What a FAT file system can represent."""

WITH_PRIVILEGED: Final = (
    WITH_16BIT_UIDS
    | WITH_32BIT_UIDS
    | WITH_USER_NAMES
    | WITH_DEVICE_NODES
    | WITH_FLAG_SYSTEM
    | WITH_FLAG_APPEND
    | WITH_FLAG_IMMUTABLE
    | WITH_SUBVOLUME
    | WITH_SUBVOLUME_RO
    | WITH_ACL
    | WITH_SELINUX
    | WITH_FCAPS
    | WITH_QUOTA_PROJID
)
"""The bits that only a privileged process can restore."""

WITH_FUSE: Final = (
    WITH_16BIT_UIDS
    | WITH_32BIT_UIDS
    | WITH_SEC_TIME
    | WITH_USEC_TIME
    | WITH_NSEC_TIME
    | WITH_2SEC_TIME
    | WITH_READ_ONLY
    | WITH_PERMISSIONS
    | WITH_SYMLINKS
    | WITH_DEVICE_NODES
    | WITH_FIFOS
    | WITH_SOCKETS
    | WITH_FAT_ATTRS
    | WITH_CHATTR
    | WITH_XATTRS
)
"""The bits ``casync mount`` can expose again."""

WITH_MASK: Final = (
    WITH_16BIT_UIDS
    | WITH_32BIT_UIDS
    | WITH_USER_NAMES
    | WITH_SEC_TIME
    | WITH_USEC_TIME
    | WITH_NSEC_TIME
    | WITH_2SEC_TIME
    | WITH_READ_ONLY
    | WITH_PERMISSIONS
    | WITH_SYMLINKS
    | WITH_DEVICE_NODES
    | WITH_FIFOS
    | WITH_SOCKETS
    | WITH_FAT_ATTRS
    | WITH_CHATTR
    | WITH_SUBVOLUME
    | WITH_SUBVOLUME_RO
    | WITH_XATTRS
    | WITH_ACL
    | WITH_SELINUX
    | WITH_FCAPS
    | WITH_QUOTA_PROJID
)
"""Every ``WITH_*`` bit (``--with=all``)."""

DEFAULT: Final = (WITH_BEST & ~WITH_FLAG_NODUMP) | EXCLUDE_NODUMP | EXCLUDE_FILE | SHA512_256
"""casync's default: what ``casync make`` writes into an archive without options."""

FEATURE_FLAGS_MAX: Final = (
    WITH_MASK | EXCLUDE_NODUMP | EXCLUDE_SUBMOUNTS | EXCLUDE_FILE | SHA512_256
)
"""Every bit casync knows; it refuses anything outside."""

KNOWN: Final = FEATURE_FLAGS_MAX | ARIA_BLAKE3
"""Every bit Aria knows: casync's plus :data:`ARIA_BLAKE3`."""

_UINT64_MAX: Final = 2**64 - 1

#: (name, bits) as ``--with=``/``--without=`` accept them, in casync's order, which is also
#: the order :func:`format_with` tries them in.
WITH_NAMES: Final[tuple[tuple[str, int], ...]] = (
    ("16bit-uids", WITH_16BIT_UIDS),
    ("32bit-uids", WITH_32BIT_UIDS),
    ("user-names", WITH_USER_NAMES),
    ("sec-time", WITH_SEC_TIME),
    ("usec-time", WITH_USEC_TIME),
    ("nsec-time", WITH_NSEC_TIME),
    ("2sec-time", WITH_2SEC_TIME),
    ("read-only", WITH_READ_ONLY),
    ("permissions", WITH_PERMISSIONS),
    ("symlinks", WITH_SYMLINKS),
    ("device-nodes", WITH_DEVICE_NODES),
    ("fifos", WITH_FIFOS),
    ("sockets", WITH_SOCKETS),
    ("flag-hidden", WITH_FLAG_HIDDEN),
    ("flag-system", WITH_FLAG_SYSTEM),
    ("flag-archive", WITH_FLAG_ARCHIVE),
    ("flag-append", WITH_FLAG_APPEND),
    ("flag-noatime", WITH_FLAG_NOATIME),
    ("flag-compr", WITH_FLAG_COMPR),
    ("flag-nocow", WITH_FLAG_NOCOW),
    ("flag-nodump", WITH_FLAG_NODUMP),
    ("flag-dirsync", WITH_FLAG_DIRSYNC),
    ("flag-immutable", WITH_FLAG_IMMUTABLE),
    ("flag-sync", WITH_FLAG_SYNC),
    ("flag-nocomp", WITH_FLAG_NOCOMP),
    ("flag-projinherit", WITH_FLAG_PROJINHERIT),
    ("subvolume", WITH_SUBVOLUME),
    ("subvolume-ro", WITH_SUBVOLUME_RO),
    ("xattrs", WITH_XATTRS),
    ("acl", WITH_ACL),
    ("selinux", WITH_SELINUX),
    ("fcaps", WITH_FCAPS),
    ("quota-projid", WITH_QUOTA_PROJID),
    ("best", WITH_BEST),
    ("unix", WITH_UNIX),
    ("fat", WITH_FAT),
    ("chattr", WITH_CHATTR),
    ("fat-attrs", WITH_FAT_ATTRS),
    ("privileged", WITH_PRIVILEGED),
    ("fuse", WITH_FUSE),
    ("all", WITH_MASK),
)

_BY_NAME: Final = dict(WITH_NAMES)

#: names for the bits that are not ``--with=`` flags (used in messages and :func:`describe`)
OTHER_NAMES: Final[tuple[tuple[str, int], ...]] = (
    ("exclude-file", EXCLUDE_FILE),
    ("sha512-256", SHA512_256),
    ("exclude-submounts", EXCLUDE_SUBMOUNTS),
    ("exclude-nodump", EXCLUDE_NODUMP),
    ("aria-blake3", ARIA_BLAKE3),
)


def parse_with(name: str) -> int:
    """The bits of one ``--with=``/``--without=`` name (``"best"``, ``"sec-time"``, ...).

    Raises :class:`UnsupportedFeature` naming the unknown name and listing the known ones.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(n for n, _ in WITH_NAMES)
        raise UnsupportedFeature(f"unknown feature flag {name!r}; known: {known}") from None


def parse_with_list(names: Iterable[str] | str) -> int:
    """The union of several names, given as an iterable or as one comma/space separated string."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    bits = 0
    for name in names:
        bits |= parse_with(name)
    return bits


def format_with(flags: int) -> list[str]:
    """The ``--with=`` names of the ``WITH_*`` bits of ``flags``, as casync prints them.

    casync walks :data:`WITH_NAMES` in order and takes each name whose bits are all still
    left; since every single bit comes before the composites, the result is one name per
    bit, in table order. Other bits are ignored; unknown bits raise
    :class:`UnsupportedFeature`.
    """
    check_known(flags, aria=True)
    left = flags & WITH_MASK
    names: list[str] = []
    for name, bits in WITH_NAMES:
        if left == 0:
            break
        if left & bits == bits:
            names.append(name)
            left &= ~bits
    return names


def describe(flags: int) -> str:
    """Every bit of ``flags`` by name (``with`` names, then ``exclude-*``, digest), for messages.

    Unknown bits are shown in hex rather than refused.
    """
    known = flags & KNOWN
    parts = format_with(known)
    parts += [name for name, bit in OTHER_NAMES if flags & bit]
    unknown = flags & ~KNOWN & _UINT64_MAX
    if unknown:
        parts.append(f"unknown:{unknown:#x}")
    return " ".join(parts) if parts else "(none)"


def check_known(flags: int, *, aria: bool = True) -> None:
    """Raise :class:`UnsupportedFeature` naming the bits outside the known set.

    With ``aria=False`` the known set is casync's (:data:`FEATURE_FLAGS_MAX`), so
    :data:`ARIA_BLAKE3` is refused as casync would refuse it.
    """
    if flags < 0 or flags > _UINT64_MAX:
        raise UnsupportedFeature(f"feature flags {flags:#x} are not a 64-bit value")
    if flags == _UINT64_MAX:
        raise UnsupportedFeature("feature flags 0xffffffffffffffff (all bits) are reserved")
    allowed = KNOWN if aria else FEATURE_FLAGS_MAX
    unknown = flags & ~allowed
    if unknown:
        bits = ", ".join(f"bit {i} ({1 << i:#x})" for i in range(64) if unknown >> i & 1)
        who = "Aria" if aria else "casync"
        raise UnsupportedFeature(f"feature flags {flags:#x} carry bits unknown to {who}: {bits}")


def normalize(flags: int, *, aria: bool = True) -> int:
    """``flags`` with redundant bits dropped, as casync's ``ca_feature_flags_normalize``.

    ACLs without any uid bit gain 32-bit uids and user names; 32-bit uids drop 16-bit
    ones; the finest time granularity wins; ACLs drop permissions and read-only,
    permissions drop read-only; ``EXCLUDE_NODUMP`` drops ``WITH_FLAG_NODUMP``; a read-only
    subvolume implies a subvolume; :data:`ARIA_BLAKE3` drops :data:`SHA512_256`.

    Raises :class:`UnsupportedFeature` for unknown bits (see :func:`check_known`).
    """
    check_known(flags, aria=aria)
    if flags & WITH_ACL and not flags & (WITH_16BIT_UIDS | WITH_32BIT_UIDS | WITH_USER_NAMES):
        flags |= WITH_32BIT_UIDS | WITH_USER_NAMES
    if flags & WITH_32BIT_UIDS:
        flags &= ~WITH_16BIT_UIDS
    if flags & WITH_NSEC_TIME:
        flags &= ~(WITH_USEC_TIME | WITH_SEC_TIME | WITH_2SEC_TIME)
    if flags & WITH_USEC_TIME:
        flags &= ~(WITH_SEC_TIME | WITH_2SEC_TIME)
    if flags & WITH_SEC_TIME:
        flags &= ~WITH_2SEC_TIME
    if flags & WITH_ACL:
        flags &= ~(WITH_PERMISSIONS | WITH_READ_ONLY)
    if flags & WITH_PERMISSIONS:
        flags &= ~WITH_READ_ONLY
    if flags & EXCLUDE_NODUMP:
        flags &= ~WITH_FLAG_NODUMP
    if flags & WITH_SUBVOLUME_RO:
        flags |= WITH_SUBVOLUME
    if flags & ARIA_BLAKE3:
        flags &= ~SHA512_256
    return flags


def are_normalized(flags: int, *, aria: bool = True) -> bool:
    """Whether ``flags`` has no redundant bits (casync's ``ca_feature_flags_are_normalized``).

    Raises :class:`UnsupportedFeature` for unknown bits.
    """
    check_known(flags, aria=aria)
    return normalize(flags, aria=aria) == flags


def normalize_mask(mask: int) -> int:
    """A mask of acceptable bits, widened so every redundant variant of a bit is accepted.

    casync's ``ca_feature_flags_normalize_mask``: any uid bit allows both, any time bit
    allows all four, permissions allow read-only, ACLs allow both, a read-only subvolume
    allows a subvolume. Unknown bits are dropped; an all-ones mask stays all ones.
    """
    if mask == _UINT64_MAX:
        return mask
    mask &= KNOWN
    if mask & (WITH_16BIT_UIDS | WITH_32BIT_UIDS):
        mask |= WITH_16BIT_UIDS | WITH_32BIT_UIDS
    times = WITH_SEC_TIME | WITH_USEC_TIME | WITH_NSEC_TIME | WITH_2SEC_TIME
    if mask & times:
        mask |= times
    if mask & WITH_PERMISSIONS:
        mask |= WITH_READ_ONLY
    if mask & WITH_ACL:
        mask |= WITH_PERMISSIONS | WITH_READ_ONLY
    if mask & WITH_SUBVOLUME_RO:
        mask |= WITH_SUBVOLUME
    return mask


def time_granularity_ns(flags: int) -> int | None:
    """The mtime granularity ``flags`` ask for in nanoseconds, or ``None`` (no time stored)."""
    if flags & WITH_NSEC_TIME:
        return 1
    if flags & WITH_USEC_TIME:
        return 1_000
    if flags & WITH_SEC_TIME:
        return 1_000_000_000
    if flags & WITH_2SEC_TIME:
        return 2_000_000_000
    return None


def make_flags(
    with_: Iterable[str] | str = (),
    without: Iterable[str] | str = (),
    *,
    exclude_nodump: bool = True,
    exclude_submounts: bool = False,
    exclude_file: bool = True,
    digest: str = "sha512-256",
) -> int:
    """The normalized flags ``casync make`` uses for an archive with these options.

    Like casync's command line: without any ``with_`` names every ``WITH_*`` bit is
    selected (``all``); then the ``without`` names are removed; the ``exclude_*``
    switches (casync's ``--exclude-nodump=``, ``--exclude-submounts=``,
    ``--exclude-file=``) and the chunk digest (``sha512-256``, ``sha256`` or Aria's
    ``blake3``) add their bits. This build's casync (Debian's, with SELinux support)
    accepts every ``WITH_*`` bit. Raises :class:`UnsupportedFeature` for unknown names
    or digests.
    """
    selected = parse_with_list(with_)
    flags = (selected if selected else WITH_MASK) & ~parse_with_list(without)
    if exclude_nodump:
        flags |= EXCLUDE_NODUMP
    if exclude_submounts:
        flags |= EXCLUDE_SUBMOUNTS
    if exclude_file:
        flags |= EXCLUDE_FILE
    flags |= flags_for_digest(digest)
    return normalize(flags)


def flags_for_digest(digest: str) -> int:
    """The digest bits for a chunk digest name (``sha512-256``, ``sha256``, ``blake3``)."""
    if digest == "sha512-256":
        return SHA512_256
    if digest == "sha256":
        return 0
    if digest == "blake3":
        return ARIA_BLAKE3
    raise UnsupportedFeature(f"unknown chunk digest {digest!r}; known: sha512-256, sha256, blake3")


def digest_of(flags: int) -> str:
    """The chunk digest the flags name: ``blake3`` (Aria), ``sha512-256`` or ``sha256``."""
    if flags & ARIA_BLAKE3:
        return "blake3"
    return "sha512-256" if flags & SHA512_256 else "sha256"


# chattr(1) flags (FS_IOC_GETFLAGS) and FAT attributes as the WITH_FLAG_* bits they map to
FS_APPEND_FL: Final = 0x00000020
FS_NOATIME_FL: Final = 0x00000080
FS_COMPR_FL: Final = 0x00000004
FS_NOCOW_FL: Final = 0x00800000
FS_NODUMP_FL: Final = 0x00000040
FS_DIRSYNC_FL: Final = 0x00010000
FS_IMMUTABLE_FL: Final = 0x00000010
FS_SYNC_FL: Final = 0x00000008
FS_NOCOMP_FL: Final = 0x00000400
FS_PROJINHERIT_FL: Final = 0x20000000

CHATTR_MAP: Final[tuple[tuple[int, int], ...]] = (
    (WITH_FLAG_APPEND, FS_APPEND_FL),
    (WITH_FLAG_NOATIME, FS_NOATIME_FL),
    (WITH_FLAG_COMPR, FS_COMPR_FL),
    (WITH_FLAG_NOCOW, FS_NOCOW_FL),
    (WITH_FLAG_NODUMP, FS_NODUMP_FL),
    (WITH_FLAG_DIRSYNC, FS_DIRSYNC_FL),
    (WITH_FLAG_IMMUTABLE, FS_IMMUTABLE_FL),
    (WITH_FLAG_SYNC, FS_SYNC_FL),
    (WITH_FLAG_NOCOMP, FS_NOCOMP_FL),
    (WITH_FLAG_PROJINHERIT, FS_PROJINHERIT_FL),
)

FAT_ATTR_HIDDEN: Final = 0x02
FAT_ATTR_SYS: Final = 0x04
FAT_ATTR_ARCH: Final = 0x20

FAT_MAP: Final[tuple[tuple[int, int], ...]] = (
    (WITH_FLAG_HIDDEN, FAT_ATTR_HIDDEN),
    (WITH_FLAG_SYSTEM, FAT_ATTR_SYS),
    (WITH_FLAG_ARCHIVE, FAT_ATTR_ARCH),
)


def from_chattr(attrs: int) -> int:
    """The ``WITH_FLAG_*`` bits for chattr(1) flags (``FS_IOC_GETFLAGS``)."""
    return _map_bits(attrs, CHATTR_MAP, reverse=False)


def to_chattr(flags: int) -> int:
    """The chattr(1) flags for ``WITH_FLAG_*`` bits."""
    return _map_bits(flags, CHATTR_MAP, reverse=True)


def from_fat_attrs(attrs: int) -> int:
    """The ``WITH_FLAG_*`` bits for FAT attributes (``FAT_IOCTL_GET_ATTRIBUTES``)."""
    return _map_bits(attrs, FAT_MAP, reverse=False)


def to_fat_attrs(flags: int) -> int:
    """The FAT attributes for ``WITH_FLAG_HIDDEN/SYSTEM/ARCHIVE`` bits."""
    return _map_bits(flags, FAT_MAP, reverse=True)


def _map_bits(value: int, table: tuple[tuple[int, int], ...], *, reverse: bool) -> int:
    out = 0
    for feature, native in table:
        src, dst = (feature, native) if reverse else (native, feature)
        if value & src:
            out |= dst
    return out


# statfs(2) f_type values casync tells file systems apart by (linux/magic.h)
MSDOS_SUPER_MAGIC: Final = 0x4D44
EXT4_SUPER_MAGIC: Final = 0xEF53
XFS_SUPER_MAGIC: Final = 0x58465342
BTRFS_SUPER_MAGIC: Final = 0x9123683E
TMPFS_MAGIC: Final = 0x01021994
FUSE_SUPER_MAGIC: Final = 0x65735546

_FS_BASE: Final = (
    WITH_16BIT_UIDS
    | WITH_32BIT_UIDS
    | WITH_USER_NAMES
    | WITH_SEC_TIME
    | WITH_USEC_TIME
    | WITH_NSEC_TIME
    | WITH_2SEC_TIME
    | WITH_READ_ONLY
    | WITH_PERMISSIONS
    | WITH_SYMLINKS
    | WITH_DEVICE_NODES
    | WITH_FIFOS
    | WITH_SOCKETS
)


def from_fs_magic(magic: int) -> int:
    """The ``WITH_*`` bits casync believes a file system (by ``statfs`` type) can represent.

    casync uses this only to *report* flags an archive asks for that no file system under
    it could supply (``casync make -v``); it never masks what it writes by it. What it
    writes is limited per file instead: chattr flags come from the ioctl (0 where the
    file system has none), FAT attributes are only read on FAT and FUSE, quota project
    ids only on ext4, XFS and FUSE, subvolumes only on btrfs.
    """
    if magic == MSDOS_SUPER_MAGIC:
        return WITH_FAT
    if magic == EXT4_SUPER_MAGIC:
        return (
            _FS_BASE
            | WITH_FLAG_APPEND
            | WITH_FLAG_NOATIME
            | WITH_FLAG_NODUMP
            | WITH_FLAG_DIRSYNC
            | WITH_FLAG_IMMUTABLE
            | WITH_FLAG_SYNC
            | WITH_XATTRS
            | WITH_ACL
            | WITH_SELINUX
            | WITH_FCAPS
            | WITH_QUOTA_PROJID
        )
    if magic == XFS_SUPER_MAGIC:
        return (
            _FS_BASE
            | WITH_FLAG_APPEND
            | WITH_FLAG_NOATIME
            | WITH_FLAG_NODUMP
            | WITH_FLAG_IMMUTABLE
            | WITH_FLAG_SYNC
            | WITH_XATTRS
            | WITH_ACL
            | WITH_SELINUX
            | WITH_FCAPS
            | WITH_QUOTA_PROJID
        )
    if magic == BTRFS_SUPER_MAGIC:
        return (
            _FS_BASE
            | WITH_FLAG_APPEND
            | WITH_FLAG_NOATIME
            | WITH_FLAG_COMPR
            | WITH_FLAG_NOCOW
            | WITH_FLAG_NODUMP
            | WITH_FLAG_DIRSYNC
            | WITH_FLAG_IMMUTABLE
            | WITH_FLAG_SYNC
            | WITH_FLAG_NOCOMP
            | WITH_XATTRS
            | WITH_ACL
            | WITH_SELINUX
            | WITH_SUBVOLUME
            | WITH_SUBVOLUME_RO
            | WITH_FCAPS
        )
    if magic == TMPFS_MAGIC:
        return _FS_BASE | WITH_ACL | WITH_SELINUX
    if magic == FUSE_SUPER_MAGIC:
        return WITH_FUSE
    return _FS_BASE
