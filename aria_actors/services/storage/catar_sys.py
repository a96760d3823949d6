"""Linux file-system calls the catar encoder and decoder need beyond :mod:`os`.

``statfs`` file system types, chattr(1) flags, FAT attributes, project quota ids, btrfs
subvolume flags, mount ids, and POSIX ACLs in their ``system.posix_acl_*`` xattr form.
Every reader treats "this file system or node type does not support it" as the neutral
value (0 / none), as casync does; other errors are raised as ``OSError``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

FS_IOC_GETFLAGS: Final = 0x80086601
FS_IOC_SETFLAGS: Final = 0x40086602
FS_IOC_FSGETXATTR: Final = 0x801C581F
FS_IOC_FSSETXATTR: Final = 0x401C5820
FAT_IOCTL_GET_ATTRIBUTES: Final = 0x80047210
FAT_IOCTL_SET_ATTRIBUTES: Final = 0x40047211
BTRFS_IOC_SUBVOL_GETFLAGS: Final = 0x80089419
BTRFS_SUBVOL_RDONLY: Final = 1 << 1

#: errors that mean "not supported here" (casync's ERRNO_IS_UNSUPPORTED)
UNSUPPORTED_ERRNOS: Final = frozenset(
    {errno.ENOTTY, errno.ENOSYS, errno.EBADF, errno.EOPNOTSUPP, errno.EINVAL}
)

_FSXATTR: Final = struct.Struct("<IIIII8x")  # xflags, extsize, nextents, projid, cowextsize

# statfs types of the virtual API file systems casync does not descend into
VIRTUAL_FS_MAGICS: Final = frozenset(
    {
        0x42494E4D,  # binfmt_misc
        0x63677270,  # cgroup2
        0x0027E0EB,  # cgroup
        0x62656570,  # configfs
        0x64626720,  # debugfs
        0x00001CD1,  # devpts
        0xDE5E81E4,  # efivarfs
        0x65735543,  # fusectl
        0x958458F6,  # hugetlbfs
        0x19800202,  # mqueue
        0x6E667364,  # nfsd
        0x00009FA0,  # proc
        0x6165676C,  # pstore
        0x67596969,  # rpc_pipefs
        0x73636673,  # securityfs
        0xF97CFF8C,  # selinuxfs
        0x43415D53,  # smackfs
        0x62656572,  # sysfs
    }
)


def _load_fstatfs() -> Callable[[int, ctypes.Array[ctypes.c_char]], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    func = libc.fstatfs
    func.argtypes = [ctypes.c_int, ctypes.c_char_p]
    func.restype = ctypes.c_int
    return cast(Callable[[int, ctypes.Array[ctypes.c_char]], int], func)


_fstatfs: Final = _load_fstatfs()


def fs_magic(fd: int) -> int:
    """The ``statfs`` type (``f_type``) of the file system holding ``fd``."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if _fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int.from_bytes(buf.raw[:8], "little") & 0xFFFFFFFF


def _ioctl_read(fd: int, request: int, size: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, request, bytes(size))
    except OSError as e:
        if e.errno in UNSUPPORTED_ERRNOS:
            return None
        raise


def read_chattr(fd: int) -> int:
    """The chattr(1) flags of an open file or directory; 0 where unsupported."""
    raw = _ioctl_read(fd, FS_IOC_GETFLAGS, 8)
    return 0 if raw is None else int.from_bytes(raw[:4], "little")


def write_chattr(fd: int, value: int, mask: int) -> None:
    """Set the chattr(1) bits in ``mask`` to those of ``value``; a no-op when already so.

    Clearing flags on a file system without them is fine; setting them raises ``OSError``.
    """
    if mask == 0:
        return
    old = read_chattr(fd)
    new = (old & ~mask) | (value & mask)
    if new == old:
        return
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, new.to_bytes(8, "little"))
    except OSError as e:
        if new == 0 and e.errno in UNSUPPORTED_ERRNOS:
            return
        raise


def read_fat_attrs(fd: int) -> int:
    """The FAT attributes of an open file on FAT (or FUSE); 0 where unsupported."""
    raw = _ioctl_read(fd, FAT_IOCTL_GET_ATTRIBUTES, 4)
    return 0 if raw is None else int.from_bytes(raw[:4], "little")


def read_quota_projid(fd: int) -> int:
    """The project quota id of an open file or directory; 0 where unsupported."""
    raw = _ioctl_read(fd, FS_IOC_FSGETXATTR, _FSXATTR.size)
    return 0 if raw is None else _FSXATTR.unpack(raw)[3]


def write_quota_projid(fd: int, projid: int) -> None:
    """Set the project quota id; setting 0 where unsupported is a no-op."""
    raw = _ioctl_read(fd, FS_IOC_FSGETXATTR, _FSXATTR.size)
    if raw is None:
        if projid == 0:
            return
        raise OSError(errno.EOPNOTSUPP, "the file system has no project quota ids")
    fields = list(_FSXATTR.unpack(raw))
    if fields[3] == projid:
        return
    fields[3] = projid
    fcntl.ioctl(fd, FS_IOC_FSSETXATTR, _FSXATTR.pack(*fields))


def read_subvolume_flags(fd: int) -> int:
    """btrfs subvolume flags of an open subvolume root (``BTRFS_IOC_SUBVOL_GETFLAGS``)."""
    raw = fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, bytes(8))
    return int.from_bytes(raw[:8], "little")


def mount_id(fd: int) -> int:
    """The mount id of an open file (``mnt_id`` of ``/proc/self/fdinfo``), or -1."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line[7:].strip())
    except FileNotFoundError:
        return -1
    return -1


# POSIX ACLs as stored in system.posix_acl_access / system.posix_acl_default
ACL_XATTR_ACCESS: Final = "system.posix_acl_access"
ACL_XATTR_DEFAULT: Final = "system.posix_acl_default"
_ACL_VERSION: Final = 2
_ACL_HEADER: Final = struct.Struct("<I")
_ACL_ENTRY: Final = struct.Struct("<HHI")
ACL_USER_OBJ: Final = 0x01
ACL_USER: Final = 0x02
ACL_GROUP_OBJ: Final = 0x04
ACL_GROUP: Final = 0x08
ACL_MASK: Final = 0x10
ACL_OTHER: Final = 0x20
ACL_UNDEFINED_ID: Final = 0xFFFFFFFF


@dataclass
class Acl:
    """A POSIX ACL: the object entries (``None`` when absent) and the named ones."""

    user_obj: int | None = None
    group_obj: int | None = None
    other: int | None = None
    mask: int | None = None
    users: list[tuple[int, int]] | None = None  # (uid, permissions)
    groups: list[tuple[int, int]] | None = None  # (gid, permissions)


def parse_acl_xattr(raw: bytes) -> Acl:
    """An ACL from its xattr form; ``ValueError`` when malformed."""
    if len(raw) < _ACL_HEADER.size or (len(raw) - _ACL_HEADER.size) % _ACL_ENTRY.size:
        raise ValueError("malformed POSIX ACL xattr")
    (version,) = _ACL_HEADER.unpack_from(raw)
    if version != _ACL_VERSION:
        raise ValueError(f"POSIX ACL xattr version {version}, not {_ACL_VERSION}")
    acl = Acl(users=[], groups=[])
    assert acl.users is not None
    assert acl.groups is not None
    for tag, perm, ident in _ACL_ENTRY.iter_unpack(raw[_ACL_HEADER.size :]):
        perm &= 7
        if tag == ACL_USER_OBJ:
            acl.user_obj = perm
        elif tag == ACL_GROUP_OBJ:
            acl.group_obj = perm
        elif tag == ACL_OTHER:
            acl.other = perm
        elif tag == ACL_MASK:
            acl.mask = perm
        elif tag == ACL_USER:
            acl.users.append((ident, perm))
        elif tag == ACL_GROUP:
            acl.groups.append((ident, perm))
        else:
            raise ValueError(f"unknown POSIX ACL tag {tag:#x}")
    return acl


def build_acl_xattr(acl: Acl) -> bytes:
    """The xattr form of an ACL, entries in the order the kernel requires."""
    parts = [_ACL_HEADER.pack(_ACL_VERSION)]

    def add(tag: int, perm: int | None, ident: int = ACL_UNDEFINED_ID) -> None:
        if perm is not None:
            parts.append(_ACL_ENTRY.pack(tag, perm, ident))

    add(ACL_USER_OBJ, acl.user_obj)
    for uid, perm in sorted(acl.users or ()):
        add(ACL_USER, perm, uid)
    add(ACL_GROUP_OBJ, acl.group_obj)
    for gid, perm in sorted(acl.groups or ()):
        add(ACL_GROUP, perm, gid)
    add(ACL_MASK, acl.mask)
    add(ACL_OTHER, acl.other)
    return b"".join(parts)


def get_xattr(path: bytes | int, name: bytes | str, *, follow: bool = True) -> bytes | None:
    """One xattr's value, or ``None`` when absent or unsupported (ENODATA, EOPNOTSUPP, EBADF).

    ``path`` is an open fd or a path (``follow=False``: the symlink itself).
    """
    try:
        if isinstance(path, int):
            return os.getxattr(path, name)
        return os.getxattr(path, name, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.EBADF):
            return None
        raise


def list_xattrs(fd: int) -> list[bytes]:
    """The xattr names of an open file, as bytes; empty when unsupported (EOPNOTSUPP, EBADF)."""
    try:
        return [os.fsencode(name) for name in os.listxattr(fd)]
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EBADF):
            return []
        raise
