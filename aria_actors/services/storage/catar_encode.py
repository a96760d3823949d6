"""Encoding a directory tree as a catar stream, byte for byte as ``casync make`` does.

:func:`encode` walks the tree depth-first, entries sorted by their byte names, and yields
the archive as a stream of ``bytes`` blocks (about ``block_size`` each; payloads are
read ``block_size`` at a time), so a caller can chunk it without holding the archive.

What each file contributes is decided by the feature flags exactly as casync decides it:

* nodes the flags cannot represent (symlinks without ``symlinks``, device nodes, fifos,
  sockets) are left out, as are files with chattr's ``nodump`` flag under
  ``EXCLUDE_NODUMP``, other mounts under ``EXCLUDE_SUBMOUNTS``, and entries matched by
  ``.caexclude`` rules (:mod:`.catar_exclude`);
* mtimes are truncated to the flags' granularity; permission bits are kept, reduced to
  read-only or dropped; uids/gids are stored (or 0), names of non-root owners added;
* xattrs of the ``user.`` and ``trusted.`` namespaces are read from regular files and
  directories only (casync reads other nodes through an ``O_PATH`` descriptor, which
  the kernel refuses, so they never carry xattrs), sorted by name;
* ACLs, SELinux labels, file capabilities and project quota ids are written only when a
  file has them (a plain file on ext4/tmpfs/overlayfs has none: casync writes nothing);
* chattr flags come from ``FS_IOC_GETFLAGS``, FAT attributes only on FAT/FUSE, quota
  ids only on ext4/XFS/FUSE, subvolumes only on btrfs: the flags word in each ENTRY is
  never reduced by what the file system supports (casync only *reports* that).

The root must be a directory for casync. As an Aria extension a regular file, symlink,
device, fifo or socket root is encoded as its lone node (ENTRY and PAYLOAD, SYMLINK or
DEVICE), which :mod:`.catar_decode` reads but casync refuses.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from . import catar_exclude, catar_sys
from . import catar_format as fmt
from . import flags as ff
from .errors import UnsupportedFeature

BLOCK_SIZE: Final = 64 * 1024

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NOFOLLOW
_NO_NAME: Final = 0xFFFFFFFF
_UID_BITS: Final = ff.WITH_16BIT_UIDS | ff.WITH_32BIT_UIDS


@dataclass
class _Node:
    st: os.stat_result
    fd: int  # -1 unless a regular file or directory
    magic: int
    name: bytes | None  # None for the root
    parent_fd: int  # -1 for the root
    root_path: bytes | None = None  # the root's own path (for unopened roots)
    symlink: bytes | None = None
    rules: list[catar_exclude.Rule] = field(default_factory=list)
    chattr: int | None = None

    def lpath(self) -> bytes:
        """A path to the node itself (not following a final symlink), for unopened nodes."""
        if self.name is None:
            assert self.root_path is not None
            return self.root_path
        return b"/proc/self/fd/%d/" % self.parent_fd + self.name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def encode(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    flags: int = ff.DEFAULT,
    *,
    block_size: int = BLOCK_SIZE,
    exclude_files: bool | None = None,
) -> Iterator[bytes]:
    """The catar archive of the tree at ``path``, as ``bytes`` blocks.

    ``flags`` are casync feature flags (normalized first; :func:`.flags.make_flags`
    builds them from ``--with``/``--without`` names). ``exclude_files`` says whether
    ``.caexclude`` files are obeyed; ``None`` follows ``EXCLUDE_FILE`` in ``flags``.
    Debian's casync 2 obeys them even with ``--exclude-file=no`` (the flag bit is still
    cleared), so pass ``True`` to reproduce its bytes in that case.

    A root symlink to a directory is followed, as casync does; any other root symlink is
    archived as the symlink itself. Blocks are about ``block_size`` bytes, larger when one
    record is.

    Raises :class:`UnsupportedFeature` for unknown flag bits, for a root of a type the
    flags exclude, for ids the flags cannot hold (16-bit uids above 65535, the invalid
    ids 65535 and 4294967295), and for trees nested deeper than casync's 64 levels;
    ``OSError`` when the tree cannot be read or a file shrinks while being read;
    :class:`.catar_exclude.ExcludeSyntaxError` for a ``.caexclude`` casync refuses. The
    generator closes every descriptor it opened when it ends or is closed early.
    """
    normalized = ff.normalize(flags)
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    use_excludes = bool(normalized & ff.EXCLUDE_FILE) if exclude_files is None else exclude_files
    encoder = _Encoder(normalized, block_size, use_excludes)
    return _coalesce(encoder.run(os.fsencode(path)), block_size)


def _coalesce(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    buf = bytearray()
    for piece in pieces:
        if not buf and len(piece) >= size:
            yield piece
            continue
        buf += piece
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class _Encoder:
    def __init__(self, flags: int, block_size: int, use_excludes: bool) -> None:
        self.flags = flags
        self.granularity = ff.time_granularity_ns(flags)
        self.block_size = block_size
        self.use_excludes = use_excludes
        self.offset = 0
        self._users: dict[int, bytes | None] = {}
        self._groups: dict[int, bytes | None] = {}

    # -- the walk -------------------------------------------------------------------------

    def run(self, path: bytes) -> Iterator[bytes]:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.stat(path)
            except OSError:
                target = None
            if target is not None and stat.S_ISDIR(target.st_mode):
                st = target  # casync follows a root symlink to a directory
        fd = -1
        if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            extra = os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | extra)
        root = _Node(st, fd, 0, None, -1, root_path=path)
        try:
            if fd >= 0:
                root.st = os.fstat(fd)
                root.magic = catar_sys.fs_magic(fd)
            elif stat.S_ISLNK(st.st_mode):
                root.symlink = os.readlink(path)
            self._check_representable(root)
            yield from self._node(root, 0)
        finally:
            root.close()

    def _node(self, node: _Node, depth: int) -> Iterator[bytes]:
        entry_offset = self.offset
        yield self._out(self._entry(node))
        mode = node.st.st_mode
        if stat.S_ISREG(mode) and self._shall_enumerate(node):
            yield from self._payload(node)
        elif stat.S_ISDIR(mode):
            yield from self._directory(node, depth, entry_offset)

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def _payload(self, node: _Node) -> Iterator[bytes]:
        size = node.st.st_size
        done = 0
        while done < size:
            want = min(self.block_size, size - done)
            data = os.pread(node.fd, want, done)
            if len(data) != want:
                raise OSError(errno.EIO, "file shrank while being archived", _describe(node))
            done += want
            yield self._out(data)

    def _directory(self, node: _Node, depth: int, entry_offset: int) -> Iterator[bytes]:
        items: list[fmt.GoodbyeItem] = []
        if self._shall_enumerate(node):
            names = sorted(os.fsencode(name) for name in os.listdir(node.fd))
            loaded_excludes = False
            for name in names:
                if depth + 1 >= fmt.MAX_DEPTH:
                    raise UnsupportedFeature(
                        f"{_describe(node)}: nested deeper than casync's {fmt.MAX_DEPTH} levels"
                    )
                child = self._open_child(node, name)
                try:
                    if not self._shall_store(node, child):
                        continue
                    if self.use_excludes and not loaded_excludes:
                        loaded_excludes = True
                        if catar_exclude.EXCLUDE_FILE_NAME in names:
                            node.rules = node.rules + catar_exclude.load(node.fd)
                    excluded, below = catar_exclude.test(
                        node.rules, name, stat.S_ISDIR(child.st.st_mode)
                    )
                    if excluded:
                        continue
                    child.rules = below
                    start = self.offset
                    size = fmt.HEADER_SIZE + len(name) + 1
                    yield self._out(fmt.header(fmt.FILENAME, size) + name + b"\0")
                    yield from self._node(child, depth + 1)
                    items.append(fmt.GoodbyeItem(fmt.filename_hash(name), start, self.offset))
                finally:
                    child.close()
        yield self._out(fmt.goodbye_record(items, self.offset, entry_offset))

    def _open_child(self, parent: _Node, name: bytes) -> _Node:
        st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        fd = -1
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            extra = os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0
            fd = os.open(name, _OPEN_FLAGS | extra, dir_fd=parent.fd)
            try:
                st = os.fstat(fd)
            except BaseException:
                os.close(fd)
                raise
        child = _Node(st, fd, parent.magic, name, parent.fd)
        try:
            if fd >= 0 and st.st_dev != parent.st.st_dev:
                child.magic = catar_sys.fs_magic(fd)
            if stat.S_ISLNK(st.st_mode):
                child.symlink = os.readlink(name, dir_fd=parent.fd)
        except BaseException:
            child.close()
            raise
        return child

    def _shall_store(self, parent: _Node, child: _Node) -> bool:
        mode = child.st.st_mode
        flags = self.flags
        if stat.S_ISLNK(mode) and not flags & ff.WITH_SYMLINKS:
            return False
        if (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)) and not flags & ff.WITH_DEVICE_NODES:
            return False
        if stat.S_ISFIFO(mode) and not flags & ff.WITH_FIFOS:
            return False
        if stat.S_ISSOCK(mode) and not flags & ff.WITH_SOCKETS:
            return False
        if flags & ff.EXCLUDE_NODUMP and self._chattr(child) & ff.FS_NODUMP_FL:
            return False
        if flags & ff.EXCLUDE_SUBMOUNTS and parent.fd >= 0 and child.fd >= 0:
            parent_mount, child_mount = catar_sys.mount_id(parent.fd), catar_sys.mount_id(child.fd)
            if parent_mount >= 0 and child_mount >= 0 and parent_mount != child_mount:
                return False
        return True

    @staticmethod
    def _shall_enumerate(node: _Node) -> bool:
        mode = node.st.st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            return False
        return node.magic not in catar_sys.VIRTUAL_FS_MAGICS

    def _check_representable(self, node: _Node) -> None:
        mode = node.st.st_mode
        needs = (
            (stat.S_ISLNK(mode), ff.WITH_SYMLINKS, "a symlink"),
            (stat.S_ISBLK(mode) or stat.S_ISCHR(mode), ff.WITH_DEVICE_NODES, "a device node"),
            (stat.S_ISFIFO(mode), ff.WITH_FIFOS, "a fifo"),
            (stat.S_ISSOCK(mode), ff.WITH_SOCKETS, "a socket"),
        )
        for applies, bit, what in needs:
            if applies and not self.flags & bit:
                raise UnsupportedFeature(
                    f"{_describe(node)} is {what}, which these feature flags do not store"
                )

    # -- one node's records ---------------------------------------------------------------

    def _entry(self, node: _Node) -> bytes:
        flags = self.flags
        st = node.st
        mode = st.st_mode
        is_reg, is_dir = stat.S_ISREG(mode), stat.S_ISDIR(mode)

        entry_flags = 0
        if is_reg or is_dir:
            if flags & ff.WITH_CHATTR:
                entry_flags |= ff.from_chattr(self._chattr(node)) & flags
            if flags & ff.WITH_FAT_ATTRS:
                entry_flags |= ff.from_fat_attrs(self._fat_attrs(node)) & flags
        if is_dir and flags & ff.WITH_SUBVOLUME:
            entry_flags |= self._subvolume(node) & flags

        selinux = self._selinux(node)
        xattrs, fcaps = self._xattrs(node)
        acl_records = self._acl(node)

        uid = gid = 0
        if flags & _UID_BITS:
            uid, gid = self._valid_id(node, st.st_uid), self._valid_id(node, st.st_gid)
            if flags & ff.WITH_16BIT_UIDS and (uid > 0xFFFF or gid > 0xFFFF):
                raise UnsupportedFeature(
                    f"{_describe(node)}: uid {uid} / gid {gid} do not fit 16-bit uids"
                )

        parts = [
            fmt.ENTRY_STRUCT.pack(
                fmt.ENTRY_SIZE,
                fmt.ENTRY,
                flags,
                self._mode(mode),
                entry_flags,
                uid,
                gid,
                self._mtime(st),
            )
        ]
        if flags & ff.WITH_USER_NAMES:
            user = self._user_name(node, st.st_uid)
            group = self._group_name(node, st.st_gid)
            if user is not None:
                parts.append(_string_record(fmt.USER, user))
            if group is not None:
                parts.append(_string_record(fmt.GROUP, group))
        if flags & ff.WITH_XATTRS:
            for name, value in xattrs:
                body = name + b"\0" + value
                parts.append(fmt.header(fmt.XATTR, fmt.HEADER_SIZE + len(body)) + body)
        parts.extend(acl_records)
        if selinux is not None:
            parts.append(_string_record(fmt.SELINUX, selinux))
        if fcaps is not None and flags & ff.WITH_FCAPS:
            parts.append(fmt.header(fmt.FCAPS, fmt.HEADER_SIZE + len(fcaps)) + fcaps)
        projid = self._quota_projid(node)
        if projid:
            parts.append(
                fmt.QUOTA_PROJID_STRUCT.pack(fmt.QUOTA_PROJID_STRUCT.size, fmt.QUOTA_PROJID, projid)
            )
        if is_reg:
            size = st.st_size if self._shall_enumerate(node) else 0
            parts.append(fmt.header(fmt.PAYLOAD, fmt.HEADER_SIZE + size))
        elif stat.S_ISLNK(mode):
            assert node.symlink is not None
            parts.append(_string_record(fmt.SYMLINK, node.symlink))
        elif stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
            parts.append(
                fmt.DEVICE_STRUCT.pack(
                    fmt.DEVICE_STRUCT.size,
                    fmt.DEVICE,
                    os.major(st.st_rdev),
                    os.minor(st.st_rdev),
                )
            )
        return b"".join(parts)

    def _mode(self, mode: int) -> int:
        fmt_bits = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            return stat.S_IFLNK | 0o777
        if self.flags & (ff.WITH_PERMISSIONS | ff.WITH_ACL):
            return fmt_bits | (mode & 0o7777)
        is_dir = stat.S_ISDIR(mode)
        if self.flags & ff.WITH_READ_ONLY:
            if mode & 0o222:
                return fmt_bits | (0o777 if is_dir else 0o666)
            return fmt_bits | (0o555 if is_dir else 0o444)
        return fmt_bits | (0o777 if is_dir else 0o666)

    def _mtime(self, st: os.stat_result) -> int:
        if self.granularity is None:
            return 0
        return st.st_mtime_ns // self.granularity * self.granularity

    def _valid_id(self, node: _Node, ident: int) -> int:
        if ident in (0xFFFF, 0xFFFFFFFF):
            raise UnsupportedFeature(f"{_describe(node)}: id {ident} cannot be archived")
        return ident

    def _user_name(self, node: _Node, uid: int) -> bytes | None:
        self._valid_id(node, uid)
        if uid == 0:
            return None  # root is implied
        if uid not in self._users:
            try:
                self._users[uid] = os.fsencode(pwd.getpwuid(uid).pw_name)
            except KeyError:
                self._users[uid] = None if self.flags & _UID_BITS else str(uid).encode()
        return self._users[uid]

    def _group_name(self, node: _Node, gid: int) -> bytes | None:
        if gid == 0:
            return None
        if gid not in self._groups:
            try:
                self._groups[gid] = os.fsencode(grp.getgrgid(gid).gr_name)
            except KeyError:
                if self.flags & _UID_BITS:
                    self._groups[gid] = None
                else:
                    self._groups[gid] = str(self._valid_id(node, gid)).encode()
        return self._groups[gid]

    def _chattr(self, node: _Node) -> int:
        if node.chattr is None:
            mode = node.st.st_mode
            wanted = self.flags & (ff.WITH_CHATTR | ff.EXCLUDE_NODUMP)
            if wanted and node.fd >= 0 and (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                node.chattr = catar_sys.read_chattr(node.fd)
            else:
                node.chattr = 0
        return node.chattr

    def _fat_attrs(self, node: _Node) -> int:
        if node.fd >= 0 and node.magic in (ff.MSDOS_SUPER_MAGIC, ff.FUSE_SUPER_MAGIC):
            return catar_sys.read_fat_attrs(node.fd)
        return 0

    def _subvolume(self, node: _Node) -> int:
        if node.fd < 0 or node.magic != ff.BTRFS_SUPER_MAGIC or node.st.st_ino != 256:
            return 0
        bits = ff.WITH_SUBVOLUME
        if catar_sys.read_subvolume_flags(node.fd) & catar_sys.BTRFS_SUBVOL_RDONLY:
            bits |= ff.WITH_SUBVOLUME_RO
        return bits

    def _quota_projid(self, node: _Node) -> int:
        if not self.flags & ff.WITH_QUOTA_PROJID or node.fd < 0:
            return 0
        if node.magic not in (ff.EXT4_SUPER_MAGIC, ff.XFS_SUPER_MAGIC, ff.FUSE_SUPER_MAGIC):
            return 0
        return catar_sys.read_quota_projid(node.fd)

    def _selinux(self, node: _Node) -> bytes | None:
        if not self.flags & ff.WITH_SELINUX:
            return None
        if node.fd >= 0:
            value = catar_sys.get_xattr(node.fd, "security.selinux")
        else:
            value = catar_sys.get_xattr(node.lpath(), "security.selinux", follow=False)
        if not value:
            return None
        label = value.split(b"\0", 1)[0]
        return label or None

    def _xattrs(self, node: _Node) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """The stored xattrs (sorted) and the file capability of a node."""
        if not self.flags & (ff.WITH_XATTRS | ff.WITH_FCAPS) or stat.S_ISLNK(node.st.st_mode):
            return [], None
        is_reg = stat.S_ISREG(node.st.st_mode)
        fd = node.fd
        opened = -1
        if fd < 0:
            # casync lists these through an O_PATH descriptor (refused with EBADF by Linux)
            opened = fd = os.open(
                node.lpath(), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_PATH
            )
        try:
            xattrs: list[tuple[bytes, bytes]] = []
            fcaps = None
            for name in catar_sys.list_xattrs(fd):
                is_fcaps = is_reg and name == b"security.capability"
                if not (is_fcaps or fmt.xattr_name_stored(name)):
                    continue
                value = catar_sys.get_xattr(fd, name)
                if value is None:
                    continue  # went away meanwhile
                if is_fcaps:
                    fcaps = value
                else:
                    xattrs.append((name, value))
        finally:
            if opened >= 0:
                os.close(opened)
        xattrs.sort()
        return xattrs, fcaps

    def _acl(self, node: _Node) -> list[bytes]:
        """The ACL records of a node (none unless it has an extended or default ACL)."""
        if not self.flags & ff.WITH_ACL or stat.S_ISLNK(node.st.st_mode):
            return []
        opened = -1
        fd = node.fd
        if fd < 0:
            opened = fd = os.open(
                node.lpath(), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_PATH
            )
        try:
            proc = b"/proc/self/fd/%d" % fd
            access_raw = catar_sys.get_xattr(proc, catar_sys.ACL_XATTR_ACCESS)
            default_raw = None
            if stat.S_ISDIR(node.st.st_mode):
                default_raw = catar_sys.get_xattr(proc, catar_sys.ACL_XATTR_DEFAULT)
        finally:
            if opened >= 0:
                os.close(opened)
        records: list[bytes] = []
        default = catar_sys.Acl()
        access = catar_sys.Acl()
        try:
            if access_raw:
                access = catar_sys.parse_acl_xattr(access_raw)
            if default_raw:
                default = catar_sys.parse_acl_xattr(default_raw)
        except ValueError as e:
            raise OSError(errno.EINVAL, f"{_describe(node)}: {e}") from None
        records += self._acl_entries(node, fmt.ACL_USER, access.users, user=True)
        records += self._acl_entries(node, fmt.ACL_GROUP, access.groups, user=False)
        if access.group_obj is not None and access.mask is not None:
            records.append(
                fmt.ACL_GROUP_OBJ_STRUCT.pack(
                    fmt.ACL_GROUP_OBJ_STRUCT.size, fmt.ACL_GROUP_OBJ, access.group_obj
                )
            )
        default_objs = (default.user_obj, default.group_obj, default.other, default.mask)
        if any(value is not None for value in default_objs):
            records.append(
                fmt.ACL_DEFAULT_STRUCT.pack(
                    fmt.ACL_DEFAULT_STRUCT.size,
                    fmt.ACL_DEFAULT,
                    *(fmt.UINT64_MAX if value is None else value for value in default_objs),
                )
            )
        records += self._acl_entries(node, fmt.ACL_DEFAULT_USER, default.users, user=True)
        records += self._acl_entries(node, fmt.ACL_DEFAULT_GROUP, default.groups, user=False)
        return records

    def _acl_entries(
        self, node: _Node, type_: int, entries: list[tuple[int, int]] | None, *, user: bool
    ) -> list[bytes]:
        if not entries:
            return []
        flags = self.flags
        rows: list[tuple[int, int, bytes, int]] = []  # (stored id, has name, name, perms)
        for ident, perms in entries:
            self._valid_id(node, ident)
            if flags & ff.WITH_16BIT_UIDS and ident > 0xFFFF:
                raise UnsupportedFeature(f"{_describe(node)}: ACL id {ident} does not fit 16 bits")
            name = None
            if flags & ff.WITH_USER_NAMES:
                name = self._user_name(node, ident) if user else self._group_name(node, ident)
            stored = ident if flags & _UID_BITS else 0
            rows.append((stored, name is not None, name or b"", perms))
        rows.sort()
        out = []
        for stored, has_name, name, perms in rows:
            tail = name + b"\0" if has_name else b""
            out.append(
                fmt.ACL_ID_STRUCT.pack(fmt.ACL_ID_SIZE + len(tail), type_, stored, perms) + tail
            )
        return out


def _string_record(type_: int, value: bytes) -> bytes:
    return fmt.header(type_, fmt.HEADER_SIZE + len(value) + 1) + value + b"\0"


def _describe(node: _Node) -> str:
    if node.name is None:
        return os.fsdecode(node.root_path or b"archive root")
    return repr(os.fsdecode(node.name))
