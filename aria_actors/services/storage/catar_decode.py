"""Reading catar streams: a strict streaming parser, a lister, and an extractor.

:func:`walk` parses an archive from any iterable of ``bytes`` blocks (or a binary
file) without holding it in memory and yields, in archive order, a :class:`CatarEntry`
per node, a regular file's payload as ``bytes`` blocks right after its entry, and a
:class:`DirectoryEnd` once a directory's goodbye table has been checked.
:func:`read_entries` yields just the entries (for ``list``/``info``); :func:`extract`
recreates the tree on disk.

Validation is strict, and everything wrong raises :class:`InvalidArchive` with the
offset of the offending object — never ``struct.error``, ``IndexError`` or
``UnicodeError``:

* object sizes below their minimum, above casync's maxima, or not the fixed size of
  the type; unknown object types; truncation anywhere; trailing bytes;
* records in the wrong place or order (metadata order is ENTRY, USER, GROUP, XATTR...,
  ACL..., SELINUX, FCAPS, QUOTA_PROJID, then PAYLOAD / SYMLINK / DEVICE by type),
  duplicated records, records the archive's feature flags do not allow, feature
  flags that change between entries, are unknown or not normalized;
* modes, uids, mtimes, names, xattr names (only ``user.*``/``trusted.*``), ACLs,
  symlink targets and device numbers casync would refuse;
* file names that contain ``/`` or NUL, are empty, ``.`` or ``..``, or are not in
  strictly increasing byte order (so no name repeats);
* a goodbye table that differs in any byte from the one the directory's entries imply
  (item count, offsets, sizes, hashes, tree layout, tail);
* nesting deeper than casync's 64 levels.

Two leniencies over casync: a numeric USER/GROUP name is accepted (casync writes one
for an owner without a name when the archive has names but no numeric ids, then
refuses to read it back), and the root may be a non-directory node (see
:mod:`.catar_encode`).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from . import catar_format as fmt
from . import catar_sys
from . import flags as ff
from .errors import InvalidArchive, UnsupportedFeature

READ_SIZE: Final = 64 * 1024
_UID_BITS: Final = ff.WITH_16BIT_UIDS | ff.WITH_32BIT_UIDS
_S_IFMT: Final = 0o170000
_TIME_BITS: Final = ff.WITH_SEC_TIME | ff.WITH_USEC_TIME | ff.WITH_NSEC_TIME | ff.WITH_2SEC_TIME
_ENTRY_FLAG_BITS: Final = (
    ff.WITH_FAT_ATTRS | ff.WITH_CHATTR | ff.WITH_SUBVOLUME | ff.WITH_SUBVOLUME_RO
)

# the metadata records in the order they must appear, and whether they may repeat
_RANK: Final[dict[int, tuple[int, bool]]] = {
    fmt.USER: (1, False),
    fmt.GROUP: (2, False),
    fmt.XATTR: (3, True),
    fmt.ACL_USER: (4, True),
    fmt.ACL_GROUP: (5, True),
    fmt.ACL_GROUP_OBJ: (6, False),
    fmt.ACL_DEFAULT: (7, False),
    fmt.ACL_DEFAULT_USER: (8, True),
    fmt.ACL_DEFAULT_GROUP: (9, True),
    fmt.SELINUX: (10, False),
    fmt.FCAPS: (11, False),
    fmt.QUOTA_PROJID: (12, False),
}


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


Source = (
    bytes
    | bytearray
    | memoryview
    | Iterable[bytes]
    | Iterable[bytearray]
    | Iterable[memoryview]
    | _Readable
)


@dataclass(frozen=True)
class AclEntry:
    """A named ACL entry: the stored id (0 when the archive has no numeric ids), name, rwx."""

    id: int
    permissions: int
    name: str | None = None


@dataclass(frozen=True)
class CatarAcl:
    """A node's ACL records; ``None``/empty where the node has none.

    ``default`` is (user_obj, group_obj, other, mask) of a directory's default ACL, with
    ``None`` for an absent mask.
    """

    users: tuple[AclEntry, ...] = ()
    groups: tuple[AclEntry, ...] = ()
    group_obj: int | None = None
    default: tuple[int, int, int, int | None] | None = None
    default_users: tuple[AclEntry, ...] = ()
    default_groups: tuple[AclEntry, ...] = ()


@dataclass(frozen=True)
class CatarEntry:
    """One node of an archive, as recorded.

    ``path`` is relative to the archive root (``"."`` for the root itself, names joined
    by ``/`` and decoded with the file-system encoding); ``name`` is the raw last
    component. ``size`` is the payload size of a regular file (else 0); ``rdev`` is
    (major, minor) of a device node; ``flags`` are the entry's chattr/FAT/subvolume
    ``WITH_FLAG_*`` bits; ``offset`` is where the ENTRY begins in the archive.
    """

    path: str
    name: bytes
    offset: int
    feature_flags: int
    mode: int
    flags: int
    uid: int
    gid: int
    mtime_ns: int
    user: str | None = None
    group: str | None = None
    size: int = 0
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    symlink_target: bytes | None = None
    rdev: tuple[int, int] | None = None
    acl: CatarAcl | None = None
    selinux_label: bytes | None = None
    fcaps: bytes | None = None
    quota_projid: int | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


@dataclass(frozen=True)
class DirectoryEnd:
    """A directory's entries are all done and its goodbye table is correct."""

    path: str
    offset: int


Event = CatarEntry | bytes | DirectoryEnd


class _Stream:
    """Exact reads over a block source, counting the archive offset."""

    def __init__(self, source: Source) -> None:
        self._blocks: Iterator[bytes | bytearray | memoryview]
        if isinstance(source, bytes | bytearray | memoryview):
            self._blocks = iter((source,))
        elif hasattr(source, "read"):
            reader = cast(_Readable, source)
            self._blocks = iter(lambda: reader.read(READ_SIZE), b"")
        else:
            self._blocks = iter(cast(Iterable[bytes], source))
        self._buf = bytearray()
        self._pos = 0
        self.offset = 0  # archive offset of self._buf[self._pos]

    def _fill(self, n: int) -> bool:
        """Buffer at least ``n`` bytes; False when the source ends first."""
        while len(self._buf) - self._pos < n:
            try:
                block = next(self._blocks)
            except StopIteration:
                return False
            if self._pos and self._pos >= len(self._buf) // 2:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += block
        return True

    def at_eof(self) -> bool:
        return not self._fill(1)

    def peek(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise InvalidArchive(
                f"archive truncated: {what} needs {n} bytes, {len(self._buf) - self._pos} left",
                offset=self.offset,
            )
        return bytes(self._buf[self._pos : self._pos + n])

    def read(self, n: int, what: str) -> bytes:
        data = self.peek(n, what)
        self._pos += n
        self.offset += n
        return data

    def read_some(self, limit: int, what: str) -> bytes:
        """Between 1 and ``limit`` bytes: what is buffered, or the next block."""
        if not self._fill(1):
            raise InvalidArchive(f"archive truncated inside {what}", offset=self.offset)
        n = min(limit, len(self._buf) - self._pos)
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        self.offset += n
        return data


@dataclass
class _Meta:
    """The metadata records of one node, as they are parsed."""

    user: str | None = None
    group: str | None = None
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    acl_users: list[AclEntry] = field(default_factory=list)
    acl_groups: list[AclEntry] = field(default_factory=list)
    acl_group_obj: int | None = None
    acl_default: tuple[int, int, int, int | None] | None = None
    acl_default_users: list[AclEntry] = field(default_factory=list)
    acl_default_groups: list[AclEntry] = field(default_factory=list)
    selinux: bytes | None = None
    fcaps: bytes | None = None
    quota_projid: int | None = None
    acl_sort_keys: dict[int, tuple[int, int, bytes, int]] = field(default_factory=dict)


def walk(source: Source, *, max_depth: int = fmt.MAX_DEPTH) -> Iterator[Event]:
    """The events of the archive in ``source``: entries, payload blocks, directory ends.

    ``source`` is an iterable of ``bytes``-like blocks or a binary file. A regular
    file's payload blocks follow its :class:`CatarEntry` directly; a consumer that does
    not want them just skips ``bytes`` events. Raises :class:`InvalidArchive` (with the
    offset) on the first thing wrong; events before it have already been yielded.
    """
    return _Parser(_Stream(source), max_depth).run()


def read_entries(source: Source, *, max_depth: int = fmt.MAX_DEPTH) -> Iterator[CatarEntry]:
    """The entries of the archive, in archive order, payloads skipped (but checked in size).

    The whole archive is validated as it is read; see :func:`walk`.
    """
    for event in walk(source, max_depth=max_depth):
        if isinstance(event, CatarEntry):
            yield event


class _Parser:
    def __init__(self, stream: _Stream, max_depth: int) -> None:
        self.s = stream
        self.max_depth = max_depth
        self.flags: int | None = None

    def run(self) -> Iterator[Event]:
        if self.s.at_eof():
            raise InvalidArchive("empty archive: no root ENTRY", offset=0)
        _size, type_ = self._peek_header()
        if type_ != fmt.ENTRY:
            raise InvalidArchive(
                f"an archive begins with an ENTRY, not {fmt.type_name(type_)}", offset=0
            )
        yield from self._node(".", b"", 0)
        if not self.s.at_eof():
            raise InvalidArchive("trailing data after the archive's root", offset=self.s.offset)

    # -- objects --------------------------------------------------------------------------

    def _peek_header(self) -> tuple[int, int]:
        size, type_ = fmt.HEADER.unpack(self.s.peek(fmt.HEADER_SIZE, "an object header"))
        if size < fmt.HEADER_SIZE or size == fmt.UINT64_MAX:
            raise InvalidArchive(
                f"{fmt.type_name(type_)} object with impossible size {size}", offset=self.s.offset
            )
        return size, type_

    def _read_object(self, size: int, type_: int, minimum: int, maximum: int) -> bytes:
        """The body of the object at the current offset, its size checked first."""
        if size < minimum or size > maximum:
            expected = f"{minimum} bytes" if minimum == maximum else f"{minimum}..{maximum} bytes"
            raise InvalidArchive(
                f"{fmt.type_name(type_)} object of {size} bytes (expected {expected})",
                offset=self.s.offset,
            )
        return self.s.read(size, fmt.type_name(type_))[fmt.HEADER_SIZE :]

    def _bad(self, message: str, offset: int) -> InvalidArchive:
        return InvalidArchive(message, offset=offset)

    # -- nodes ----------------------------------------------------------------------------

    def _node(self, path: str, name: bytes, depth: int) -> Iterator[Event]:
        entry_offset = self.s.offset
        size, type_ = self._peek_header()
        assert type_ == fmt.ENTRY
        body = self._read_object(size, type_, fmt.ENTRY_SIZE, fmt.ENTRY_SIZE)
        _, _, flags, mode, entry_flags, uid, gid, mtime = fmt.ENTRY_STRUCT.unpack(
            fmt.header(0, 0) + body
        )
        flags = self._check_flags(flags, entry_offset)
        self._check_entry(flags, mode, entry_flags, uid, gid, mtime, entry_offset)

        meta = _Meta()
        last_rank = 0
        payload_size: int | None = None
        symlink: bytes | None = None
        rdev: tuple[int, int] | None = None
        is_reg, is_dir, is_lnk = stat.S_ISREG(mode), stat.S_ISDIR(mode), stat.S_ISLNK(mode)
        is_dev = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        while True:
            if self.s.at_eof():
                if is_dir or is_reg or is_lnk or is_dev:
                    raise self._bad(
                        f"archive truncated: {path!r} lacks its "
                        f"{'GOODBYE' if is_dir else 'contents record'}",
                        self.s.offset,
                    )
                break
            offset = self.s.offset
            size, type_ = self._peek_header()
            if type_ in _RANK:
                rank, repeats = _RANK[type_]
                if rank < last_rank or (rank == last_rank and not repeats):
                    raise self._bad(
                        f"{fmt.type_name(type_)} record out of order in {path!r}", offset
                    )
                last_rank = rank
                self._metadata(meta, size, type_, flags, mode, uid, gid, path)
                continue
            if type_ == fmt.PAYLOAD:
                if not is_reg:
                    raise self._bad(f"PAYLOAD for {path!r}, which is not a regular file", offset)
                self.s.read(fmt.HEADER_SIZE, "PAYLOAD header")  # the data follows as events
                payload_size = size - fmt.HEADER_SIZE
                break
            if type_ == fmt.SYMLINK:
                if not is_lnk:
                    raise self._bad(f"SYMLINK for {path!r}, which is not a symlink", offset)
                body = self._read_object(size, type_, fmt.HEADER_SIZE + 2, fmt.SYMLINK_SIZE_MAX)
                symlink = _c_string(body, "symlink target", offset)
                break
            if type_ == fmt.DEVICE:
                if not is_dev:
                    raise self._bad(f"DEVICE for {path!r}, which is not a device node", offset)
                body = self._read_object(
                    size, type_, fmt.DEVICE_STRUCT.size, fmt.DEVICE_STRUCT.size
                )
                _, _, major, minor = fmt.DEVICE_STRUCT.unpack(fmt.header(0, 0) + body)
                if major >= 1 << 12 or minor >= 1 << 20:
                    raise self._bad(f"device number {major}:{minor} out of range", offset)
                rdev = (major, minor)
                break
            if type_ in (fmt.FILENAME, fmt.GOODBYE):
                if is_dir or not (is_reg or is_lnk or is_dev):
                    break  # a directory's entries, or the end of a fifo/socket
                raise self._bad(
                    f"{fmt.type_name(type_)} where {path!r} needs its contents record", offset
                )
            if type_ == fmt.ENTRY:
                raise self._bad(f"second ENTRY for {path!r}", offset)
            raise self._bad(f"unknown object {fmt.type_name(type_)}", offset)

        self._check_meta(meta, flags, mode, path, entry_offset)
        entry = CatarEntry(
            path=path,
            name=name,
            offset=entry_offset,
            feature_flags=flags,
            mode=mode,
            flags=entry_flags,
            uid=uid,
            gid=gid,
            mtime_ns=mtime,
            user=meta.user,
            group=meta.group,
            size=payload_size or 0,
            xattrs=tuple(meta.xattrs),
            symlink_target=symlink,
            rdev=rdev,
            acl=_acl_of(meta),
            selinux_label=meta.selinux,
            fcaps=meta.fcaps,
            quota_projid=meta.quota_projid,
        )
        yield entry
        if payload_size:
            left = payload_size
            while left:
                block = self.s.read_some(min(left, READ_SIZE), f"the payload of {path!r}")
                left -= len(block)
                yield block
        if is_dir:
            yield from self._directory(path, depth, entry_offset)

    def _directory(self, path: str, depth: int, entry_offset: int) -> Iterator[Event]:
        items: list[fmt.GoodbyeItem] = []
        previous: bytes | None = None
        while True:
            offset = self.s.offset
            size, type_ = self._peek_header()
            if type_ == fmt.FILENAME:
                body = self._read_object(size, type_, fmt.HEADER_SIZE + 2, fmt.FILENAME_SIZE_MAX)
                name = _c_string(body, "file name", offset)
                if b"/" in name or name in (b".", b".."):
                    raise self._bad(f"forbidden file name {name!r} in {path!r}", offset)
                if previous is not None and name <= previous:
                    raise self._bad(
                        f"file name {name!r} in {path!r} not after {previous!r} "
                        "(entries must be strictly sorted)",
                        offset,
                    )
                previous = name
                if depth + 1 >= self.max_depth:
                    raise self._bad(f"nested deeper than {self.max_depth} levels", offset)
                if self.s.at_eof():
                    raise self._bad(f"archive truncated after the name {name!r}", self.s.offset)
                _, child_type = self._peek_header()
                if child_type != fmt.ENTRY:
                    raise self._bad(
                        f"{fmt.type_name(child_type)} after FILENAME {name!r}, not an ENTRY",
                        self.s.offset,
                    )
                child_path = os.fsdecode(name) if path == "." else f"{path}/{os.fsdecode(name)}"
                yield from self._node(child_path, name, depth + 1)
                items.append(fmt.GoodbyeItem(fmt.filename_hash(name), offset, self.s.offset))
                continue
            if type_ == fmt.GOODBYE:
                expected = fmt.goodbye_record(items, offset, entry_offset)
                if size != len(expected):
                    raise self._bad(
                        f"GOODBYE of {path!r} is {size} bytes; {len(items)} entries need "
                        f"{len(expected)}",
                        offset,
                    )
                actual = fmt.header(fmt.GOODBYE, size) + self._read_object(size, type_, size, size)
                if actual != expected:
                    raise self._bad(_goodbye_mismatch(actual, expected, path), offset)
                yield DirectoryEnd(path, offset)
                return
            raise self._bad(
                f"{fmt.type_name(type_)} in directory {path!r}, expected FILENAME or GOODBYE",
                offset,
            )

    # -- validation -----------------------------------------------------------------------

    def _check_flags(self, flags: int, offset: int) -> int:
        try:
            normalized = ff.are_normalized(flags)
        except UnsupportedFeature as e:
            raise self._bad(str(e), offset) from None
        if not normalized:
            raise self._bad(f"feature flags {flags:#x} are not normalized", offset)
        if self.flags is None:
            self.flags = flags  # the root's flags hold for the whole archive
        elif flags != self.flags:
            raise self._bad(
                f"feature flags {flags:#x} differ from the archive's {self.flags:#x}", offset
            )
        return flags

    def _check_entry(
        self, flags: int, mode: int, entry_flags: int, uid: int, gid: int, mtime: int, offset: int
    ) -> None:
        if mode & ~(_S_IFMT | 0o7777):
            raise self._bad(f"mode {mode:#o} has unknown bits", offset)
        kind = mode & _S_IFMT
        allowed = {
            stat.S_IFREG: 0,
            stat.S_IFDIR: 0,
            stat.S_IFSOCK: ff.WITH_SOCKETS,
            stat.S_IFIFO: ff.WITH_FIFOS,
            stat.S_IFBLK: ff.WITH_DEVICE_NODES,
            stat.S_IFCHR: ff.WITH_DEVICE_NODES,
            stat.S_IFLNK: ff.WITH_SYMLINKS,
        }
        if kind not in allowed:
            raise self._bad(f"mode {mode:#o} is no known file type", offset)
        if allowed[kind] and not flags & allowed[kind]:
            raise self._bad(f"mode {mode:#o}: the feature flags exclude this file type", offset)
        perms = mode & 0o7777
        is_dir = kind == stat.S_IFDIR
        if kind == stat.S_IFLNK:
            if perms != 0o777:
                raise self._bad(f"symlink with mode {mode:#o} (must be 0777)", offset)
        elif not flags & (ff.WITH_PERMISSIONS | ff.WITH_ACL):
            ok = {0o777 if is_dir else 0o666}
            if flags & ff.WITH_READ_ONLY:
                ok.add(0o555 if is_dir else 0o444)
            if perms not in ok:
                raise self._bad(f"mode {mode:#o} not allowed without permissions", offset)
        if entry_flags & ~(flags & _ENTRY_FLAG_BITS):
            raise self._bad(
                f"entry flags {entry_flags:#x} not allowed by the feature flags", offset
            )
        if entry_flags and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise self._bad("entry flags on a node that is no file or directory", offset)
        if entry_flags & (ff.WITH_SUBVOLUME | ff.WITH_SUBVOLUME_RO) and not is_dir:
            raise self._bad("subvolume flag on a non-directory", offset)
        for what, ident in (("uid", uid), ("gid", gid)):
            if not _valid_id(flags, ident):
                raise self._bad(f"{what} {ident} not allowed by the feature flags", offset)
        granularity = ff.time_granularity_ns(flags)
        if mtime == fmt.UINT64_MAX or (
            mtime % granularity if granularity is not None else mtime != 0
        ):
            raise self._bad(f"mtime {mtime} finer than the feature flags allow", offset)

    def _metadata(
        self,
        meta: _Meta,
        size: int,
        type_: int,
        flags: int,
        mode: int,
        uid: int,
        gid: int,
        path: str,
    ) -> None:
        offset = self.s.offset
        kind = stat.S_IFMT(mode)
        name = fmt.type_name(type_)

        def need(bit: int) -> None:
            if not flags & bit:
                raise self._bad(f"{name} record, but the archive's flags exclude it", offset)

        if type_ in (fmt.USER, fmt.GROUP):
            need(ff.WITH_USER_NAMES)
            body = self._read_object(size, type_, fmt.HEADER_SIZE + 2, fmt.USER_SIZE_MAX)
            text = _user_name(body, offset)
            ident = uid if type_ == fmt.USER else gid
            if flags & _UID_BITS and ident == 0 and text == "root":
                raise self._bad(f"{name} 'root' for id 0 (root is implied)", offset)
            if type_ == fmt.USER:
                meta.user = text
            else:
                meta.group = text
        elif type_ == fmt.XATTR:
            need(ff.WITH_XATTRS)
            if kind == stat.S_IFLNK:
                raise self._bad(f"XATTR on the symlink {path!r}", offset)
            body = self._read_object(size, type_, fmt.HEADER_SIZE + 4, fmt.XATTR_SIZE_MAX)
            end = body.find(b"\0", 0, 256)
            if end < 0:
                raise self._bad("XATTR name not NUL-terminated within 255 bytes", offset)
            xname, value = body[:end], body[end + 1 :]
            if not fmt.xattr_name_stored(xname):
                raise self._bad(f"XATTR name {xname!r} (only user.* and trusted.*)", offset)
            if meta.xattrs and xname <= meta.xattrs[-1][0]:
                raise self._bad(f"XATTR {xname!r} not sorted after {meta.xattrs[-1][0]!r}", offset)
            meta.xattrs.append((xname, value))
        elif type_ in (fmt.ACL_USER, fmt.ACL_GROUP, fmt.ACL_DEFAULT_USER, fmt.ACL_DEFAULT_GROUP):
            need(ff.WITH_ACL)
            self._no_acl_on_symlink(kind, path, offset)
            body = self._read_object(
                size,
                type_,
                fmt.ACL_ID_SIZE,
                fmt.ACL_USER_SIZE_MAX,
            )
            ident = int.from_bytes(body[0:8], "little")
            perms = int.from_bytes(body[8:16], "little")
            text = None
            if len(body) > 16:
                if not flags & ff.WITH_USER_NAMES:
                    raise self._bad(f"{name} carries a name, but the archive has no names", offset)
                text = _user_name(body[16:], offset)
            if not _valid_id(flags, ident):
                raise self._bad(f"{name} id {ident} not allowed by the feature flags", offset)
            _check_perms(perms, name, offset)
            key = (ident, text is not None, (text or "").encode("utf-8", "surrogateescape"), perms)
            previous = meta.acl_sort_keys.get(type_)
            if previous is not None and key <= previous:
                raise self._bad(f"{name} records not strictly sorted", offset)
            meta.acl_sort_keys[type_] = key
            entry = AclEntry(ident, perms, text)
            {
                fmt.ACL_USER: meta.acl_users,
                fmt.ACL_GROUP: meta.acl_groups,
                fmt.ACL_DEFAULT_USER: meta.acl_default_users,
                fmt.ACL_DEFAULT_GROUP: meta.acl_default_groups,
            }[type_].append(entry)
        elif type_ == fmt.ACL_GROUP_OBJ:
            need(ff.WITH_ACL)
            self._no_acl_on_symlink(kind, path, offset)
            size_ = fmt.ACL_GROUP_OBJ_STRUCT.size
            body = self._read_object(size, type_, size_, size_)
            perms = int.from_bytes(body, "little")
            _check_perms(perms, name, offset)
            meta.acl_group_obj = perms
        elif type_ == fmt.ACL_DEFAULT:
            need(ff.WITH_ACL)
            if kind != stat.S_IFDIR:
                raise self._bad(f"default ACL on {path!r}, which is not a directory", offset)
            size_ = fmt.ACL_DEFAULT_STRUCT.size
            body = self._read_object(size, type_, size_, size_)
            values = [int.from_bytes(body[i : i + 8], "little") for i in range(0, 32, 8)]
            for perms in values[:3]:
                _check_perms(perms, name, offset)
            mask = values[3]
            if mask != fmt.UINT64_MAX:
                _check_perms(mask, name, offset)
            meta.acl_default = (
                values[0],
                values[1],
                values[2],
                None if mask == fmt.UINT64_MAX else mask,
            )
        elif type_ == fmt.SELINUX:
            need(ff.WITH_SELINUX)
            body = self._read_object(size, type_, fmt.HEADER_SIZE + 2, fmt.SELINUX_SIZE_MAX)
            meta.selinux = _c_string(body, "SELinux label", offset)
        elif type_ == fmt.FCAPS:
            need(ff.WITH_FCAPS)
            if kind != stat.S_IFREG:
                raise self._bad(f"FCAPS on {path!r}, which is not a regular file", offset)
            meta.fcaps = self._read_object(size, type_, fmt.HEADER_SIZE + 1, fmt.FCAPS_SIZE_MAX)
        elif type_ == fmt.QUOTA_PROJID:
            need(ff.WITH_QUOTA_PROJID)
            if kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise self._bad(f"QUOTA_PROJID on {path!r}, no file or directory", offset)
            size_ = fmt.QUOTA_PROJID_STRUCT.size
            projid = int.from_bytes(self._read_object(size, type_, size_, size_), "little")
            if not 0 < projid <= 0xFFFFFFFF:
                raise self._bad(f"quota project id {projid} out of range", offset)
            meta.quota_projid = projid

    def _no_acl_on_symlink(self, kind: int, path: str, offset: int) -> None:
        if kind == stat.S_IFLNK:
            raise self._bad(f"ACL on the symlink {path!r}", offset)

    def _check_meta(self, meta: _Meta, flags: int, mode: int, path: str, offset: int) -> None:
        names_required = flags & ff.WITH_USER_NAMES and not flags & _UID_BITS
        if names_required and (meta.user is None or meta.group is None):
            raise self._bad(f"{path!r} lacks USER/GROUP names the archive requires", offset)
        if (meta.acl_users or meta.acl_groups) and meta.acl_group_obj is None:
            raise self._bad(f"{path!r}: named ACL entries without ACL_GROUP_OBJ", offset)
        if (meta.acl_default_users or meta.acl_default_groups) and (
            meta.acl_default is None or meta.acl_default[3] is None
        ):
            raise self._bad(f"{path!r}: named default ACL entries without a mask", offset)
        if (meta.acl_default_users or meta.acl_default_groups) and not stat.S_ISDIR(mode):
            raise self._bad(f"{path!r}: default ACL on a non-directory", offset)


def _acl_of(meta: _Meta) -> CatarAcl | None:
    acl = CatarAcl(
        users=tuple(meta.acl_users),
        groups=tuple(meta.acl_groups),
        group_obj=meta.acl_group_obj,
        default=meta.acl_default,
        default_users=tuple(meta.acl_default_users),
        default_groups=tuple(meta.acl_default_groups),
    )
    return None if acl == CatarAcl() else acl


def _valid_id(flags: int, ident: int) -> bool:
    if flags & ff.WITH_16BIT_UIDS:
        return ident < 0xFFFF
    if flags & ff.WITH_32BIT_UIDS:
        return ident < 0xFFFFFFFF and ident != 0xFFFF
    return ident == 0


def _check_perms(perms: int, what: str, offset: int) -> None:
    if perms & ~7:
        raise InvalidArchive(f"{what} permissions {perms:#x} beyond rwx", offset=offset)


def _c_string(body: bytes, what: str, offset: int) -> bytes:
    """A NUL-terminated, non-empty string without inner NULs."""
    if len(body) < 2 or body[-1] != 0:
        raise InvalidArchive(f"{what} is not a NUL-terminated string", offset=offset)
    text = body[:-1]
    if b"\0" in text:
        raise InvalidArchive(f"{what} contains a NUL byte", offset=offset)
    return text


def _user_name(body: bytes, offset: int) -> str:
    raw = _c_string(body, "user/group name", offset)
    if len(raw) > 255:
        raise InvalidArchive("user/group name longer than 255 bytes", offset=offset)
    if raw.isdigit() and raw.isascii():
        if raw == b"0":
            raise InvalidArchive("user/group name '0' (root is implied)", offset=offset)
        return raw.decode()
    first_ok = raw[:1].isalpha() or raw[:1] == b"_"
    rest_ok = all(c in _NAME_CHARS for c in raw[1:])
    if not (raw.isascii() and first_ok and rest_ok):
        raise InvalidArchive(f"invalid user/group name {raw!r}", offset=offset)
    if raw == b"root":
        raise InvalidArchive("user/group name 'root' (root is implied)", offset=offset)
    return raw.decode()


_NAME_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _goodbye_mismatch(actual: bytes, expected: bytes, path: str) -> str:
    tail_at = len(expected) - fmt.GOODBYE_ITEM_SIZE
    a_off, a_size, a_marker = fmt.GOODBYE_ITEM.unpack_from(actual, tail_at)
    e_off, e_size, e_marker = fmt.GOODBYE_ITEM.unpack_from(expected, tail_at)
    if a_marker != e_marker:
        return f"GOODBYE of {path!r}: bad tail marker {a_marker:#x}"
    if a_size != e_size:
        return f"GOODBYE of {path!r}: tail says {a_size} bytes, the object has {e_size}"
    if a_off != e_off:
        return f"GOODBYE of {path!r}: tail points {a_off} bytes back, the ENTRY is {e_off} back"
    for i in range(fmt.HEADER_SIZE, tail_at, fmt.GOODBYE_ITEM_SIZE):
        if actual[i : i + fmt.GOODBYE_ITEM_SIZE] != expected[i : i + fmt.GOODBYE_ITEM_SIZE]:
            item = (i - fmt.HEADER_SIZE) // fmt.GOODBYE_ITEM_SIZE
            return (
                f"GOODBYE of {path!r}: item {item} does not match the directory's entries "
                "(offset, size, hash or order)"
            )
    return f"GOODBYE of {path!r} does not match the directory's entries"


# -- extraction ------------------------------------------------------------------------


def extract(
    source: Source,
    target: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    mask: int | None = None,
    restore_owner: bool | None = None,
) -> CatarEntry:
    """Recreate the archive's tree at ``target``; the root's entry is returned.

    ``target`` must not exist or be an empty directory (a non-directory root is created
    as ``target`` itself, which must not exist). Every node is created anew through the
    descriptor of its parent directory, with ``O_NOFOLLOW``/``O_EXCL`` semantics and
    names checked by :func:`walk`, so nothing is ever written outside ``target``, even
    by archives with symlinks, ``..`` names or repeated names.

    What is restored is what the archive's feature flags recorded, optionally limited
    to the ``WITH_*`` bits of ``mask`` (each widened to its redundant variants, as
    casync's ``ca_feature_flags_normalize_mask``; every node is still created, the mask
    only limits the metadata applied to it): ownership (by
    USER/GROUP name when recorded and known here, else the numeric id; only when
    ``restore_owner``, which defaults to running as root), permission bits, mtimes
    (atimes are left alone), symlinks, device nodes, fifos, sockets, xattrs (regular
    files and directories), ACLs, SELinux labels, file capabilities, quota project ids
    and chattr flags. FAT attributes and btrfs subvolumes are not restored.

    Raises :class:`InvalidArchive` when the archive is bad — what was extracted before
    the error stays in ``target`` — and ``OSError`` when the target cannot be written
    (an existing non-empty target: ``FileExistsError``; device nodes need root).
    """
    owner = os.geteuid() == 0 if restore_owner is None else restore_owner
    return _Extractor(os.fsencode(target), mask, owner).run(walk(source))


@dataclass
class _Open:
    """A directory being extracted (or the parent of a non-directory root)."""

    fd: int
    entry: CatarEntry | None
    name: bytes | None  # its name in its parent, None for the root


class _Extractor:
    def __init__(self, target: bytes, mask: int | None, restore_owner: bool) -> None:
        self.target = target
        self.mask = mask
        self.restore_owner = restore_owner
        self.replay = 0
        self.stack: list[_Open] = []
        self.root: CatarEntry | None = None
        self._uids: dict[str, int | None] = {}
        self._gids: dict[str, int | None] = {}

    def run(self, events: Iterator[Event]) -> CatarEntry:
        file_fd = -1
        file_entry: CatarEntry | None = None
        try:
            for event in events:
                if isinstance(event, bytes):
                    _write_all(file_fd, event)
                    continue
                if file_fd >= 0:
                    assert file_entry is not None
                    self._finish_file(file_fd, file_entry)
                    file_fd, file_entry = -1, None
                if isinstance(event, DirectoryEnd):
                    done = self.stack.pop()
                    try:
                        if done.entry is not None:
                            self._finalize(done.entry, done.fd, self._parent_fd(), done.name)
                    finally:
                        os.close(done.fd)
                    continue
                file_fd = self._create(event)
                file_entry = event if file_fd >= 0 else None
                if file_fd >= 0 and event.size == 0:
                    self._finish_file(file_fd, event)
                    file_fd, file_entry = -1, None
            if file_fd >= 0:
                assert file_entry is not None
                self._finish_file(file_fd, file_entry)
                file_fd = -1
        finally:
            if file_fd >= 0:
                os.close(file_fd)
            while self.stack:
                os.close(self.stack.pop().fd)
        assert self.root is not None
        return self.root

    def _parent_fd(self) -> int:
        return self.stack[-1].fd if self.stack else -1

    def _finish_file(self, fd: int, entry: CatarEntry) -> None:
        try:
            self._finalize(entry, fd, self._parent_fd(), entry.name or None)
        finally:
            os.close(fd)

    def _create(self, entry: CatarEntry) -> int:
        """Create the node; the fd of a regular file to write its payload to, else -1."""
        if self.root is None:
            self.root = entry
            flags = entry.feature_flags
            if self.mask is None:
                self.replay = flags
            else:
                self.replay = ff.normalize(ff.normalize_mask(flags) & ff.normalize_mask(self.mask))
            return self._create_root(entry)
        parent = self.stack[-1].fd
        return self._create_in(parent, entry.name, entry)

    def _create_root(self, entry: CatarEntry) -> int:
        if entry.is_dir:
            try:
                os.mkdir(self.target, 0o700)
            except FileExistsError:
                if os.listdir(self.target):
                    raise FileExistsError(
                        errno.EEXIST, "extraction target is not empty", os.fsdecode(self.target)
                    ) from None
            fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            self.stack.append(_Open(fd, entry, None))
            return -1
        head, tail = os.path.split(os.path.abspath(self.target))
        parent = os.open(head or b"/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.stack.append(_Open(parent, None, None))
        return self._create_in(parent, tail, entry)

    def _create_in(self, parent: int, name: bytes, entry: CatarEntry) -> int:
        mode = entry.mode
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
            )
            self.stack.append(_Open(fd, entry, name))
            return -1
        if kind == stat.S_IFREG:
            return os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=parent,
            )
        if kind == stat.S_IFLNK:
            assert entry.symlink_target is not None
            os.symlink(entry.symlink_target, name, dir_fd=parent)
        elif kind == stat.S_IFIFO:
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:  # device nodes and sockets
            device = os.makedev(*entry.rdev) if entry.rdev is not None else 0
            os.mknod(name, kind | 0o600, device, dir_fd=parent)
        self._finalize(entry, -1, parent, name)
        return -1

    # -- metadata -------------------------------------------------------------------------

    def _finalize(self, entry: CatarEntry, fd: int, parent: int, name: bytes | None) -> None:
        """Apply an entry's metadata, as casync does, in casync's order."""
        replay = self.replay
        is_lnk = stat.S_ISLNK(entry.mode)
        if self.restore_owner and replay & (_UID_BITS | ff.WITH_USER_NAMES):
            uid = self._resolve(entry.user, entry.uid, user=True)
            gid = self._resolve(entry.group, entry.gid, user=False)
            if fd >= 0:
                os.fchown(fd, uid, gid)
            else:
                os.chown(_name(name), uid, gid, dir_fd=parent, follow_symlinks=False)
        if not is_lnk:
            perms = self._mode(entry)
            if perms is not None:
                if fd >= 0:
                    os.fchmod(fd, perms)
                else:
                    _chmod_nofollow(parent, _name(name), perms)
        if replay & ff.WITH_ACL and not is_lnk and entry.acl is not None:
            self._set_acl(entry, fd, parent, name)
        if replay & ff.WITH_XATTRS and fd >= 0:
            for xname, value in entry.xattrs:
                os.setxattr(fd, xname, value)
        if replay & ff.WITH_FCAPS and fd >= 0 and entry.fcaps is not None:
            os.setxattr(fd, "security.capability", entry.fcaps)
        if replay & ff.WITH_SELINUX and entry.selinux_label is not None:
            if fd >= 0:
                os.setxattr(fd, "security.selinux", entry.selinux_label + b"\0")
            else:
                path = b"/proc/self/fd/%d/" % parent + (name or b"")
                os.setxattr(
                    path, "security.selinux", entry.selinux_label + b"\0", follow_symlinks=False
                )
        if replay & ff.WITH_QUOTA_PROJID and fd >= 0 and entry.quota_projid:
            catar_sys.write_quota_projid(fd, entry.quota_projid)
        if replay & _TIME_BITS:
            if fd >= 0:
                st = os.fstat(fd)
                os.utime(fd, ns=(st.st_atime_ns, entry.mtime_ns))
            else:
                st = os.stat(_name(name), dir_fd=parent, follow_symlinks=False)
                os.utime(
                    _name(name),
                    ns=(st.st_atime_ns, entry.mtime_ns),
                    dir_fd=parent,
                    follow_symlinks=False,
                )
        if replay & ff.WITH_CHATTR and fd >= 0:
            catar_sys.write_chattr(fd, ff.to_chattr(entry.flags), ff.to_chattr(replay))

    def _mode(self, entry: CatarEntry) -> int | None:
        replay = self.replay
        if replay & (ff.WITH_PERMISSIONS | ff.WITH_ACL):
            return entry.mode & 0o7777
        if replay & ff.WITH_READ_ONLY:
            writable = entry.mode & 0o222
            base = 0o777 if stat.S_ISDIR(entry.mode) else 0o666
            return (base if writable else base & ~0o222) & ~_umask()
        return None

    def _resolve(self, name: str | None, number: int, *, user: bool) -> int:
        if name is not None and self.replay & ff.WITH_USER_NAMES:
            cache = self._uids if user else self._gids
            if name not in cache:
                if name.isdigit():
                    cache[name] = int(name)
                else:
                    try:
                        cache[name] = (
                            pwd.getpwnam(name).pw_uid if user else grp.getgrnam(name).gr_gid
                        )
                    except KeyError:
                        cache[name] = None
            resolved = cache[name]
            if resolved is not None:
                return resolved
        return number

    def _set_acl(self, entry: CatarEntry, fd: int, parent: int, name: bytes | None) -> None:
        acl = entry.acl
        assert acl is not None
        opened = -1
        if fd < 0:
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_PATH
            opened = os.open(_name(name), flags, dir_fd=parent)
        proc = b"/proc/self/fd/%d" % (fd if fd >= 0 else opened)
        try:
            if acl.users or acl.groups or acl.group_obj is not None:
                perms = entry.mode
                access = catar_sys.Acl(
                    user_obj=perms >> 6 & 7,
                    group_obj=acl.group_obj,
                    other=perms & 7,
                    mask=perms >> 3 & 7,
                    users=[
                        (self._resolve(e.name, e.id, user=True), e.permissions) for e in acl.users
                    ],
                    groups=[
                        (self._resolve(e.name, e.id, user=False), e.permissions) for e in acl.groups
                    ],
                )
                os.setxattr(proc, catar_sys.ACL_XATTR_ACCESS, catar_sys.build_acl_xattr(access))
            if acl.default is not None:
                user_obj, group_obj, other, mask = acl.default
                default = catar_sys.Acl(
                    user_obj=user_obj,
                    group_obj=group_obj,
                    other=other,
                    mask=mask,
                    users=[
                        (self._resolve(e.name, e.id, user=True), e.permissions)
                        for e in acl.default_users
                    ],
                    groups=[
                        (self._resolve(e.name, e.id, user=False), e.permissions)
                        for e in acl.default_groups
                    ],
                )
                os.setxattr(proc, catar_sys.ACL_XATTR_DEFAULT, catar_sys.build_acl_xattr(default))
        finally:
            if opened >= 0:
                os.close(opened)


def _chmod_nofollow(parent: int, name: bytes, perms: int) -> None:
    """chmod a fifo, socket or device node, refusing to follow a symlink swapped in."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "replaced by a symlink during extraction", name)
        os.chmod(b"/proc/self/fd/%d" % fd, perms)
    finally:
        os.close(fd)


def _name(name: bytes | None) -> bytes:
    assert name is not None
    return name


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
