"""catar archives: byte-identical to casync, round trips both ways, bad input refused.

The trees under test hold what a real file system offers: files of many sizes, nested
and crowded directories (a goodbye table of several levels), odd names, symlinks, a fifo,
a socket, device nodes, xattrs, ACLs, a file capability, SELinux labels, chattr flags,
``.caexclude`` rules, other owners (with and without names) and nanosecond mtimes. Parts
that need root (ownership, device nodes, trusted xattrs, ACLs, caps) are built only as
root; the tests run as root here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aria_actors.services.storage import catar_exclude, catar_sys
from aria_actors.services.storage import catar_format as fmt
from aria_actors.services.storage import flags as ff
from aria_actors.services.storage.catar import (
    CatarEntry,
    DirectoryEnd,
    encode,
    extract,
    read_entries,
    walk,
)
from aria_actors.services.storage.errors import InvalidArchive, UnsupportedFeature
from aria_actors.services.storage.siphash import siphash24

from .casync import run_casync
from .test_flags import make_flags_for

ROOT = os.geteuid() == 0
U = catar_sys.ACL_UNDEFINED_ID
WHERE_CASYNC_CANNOT_EXTRACT = 237  # casync's temporary names overflow NAME_MAX beyond this


# -- trees --------------------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int | None = None) -> None:
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)


def _xattr(path: Path, name: str, value: bytes, *, follow: bool = True) -> bool:
    """Set an xattr if the file system and our privileges allow it."""
    try:
        os.setxattr(path, name, value, follow_symlinks=follow)
    except OSError:
        return False
    return True


def _acl(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def build_rich_tree(root: Path, *, long_name: int = 255) -> None:
    """Files, directories, odd names, special nodes, xattrs, owners, mtimes."""
    root.mkdir()
    rnd = __import__("random").Random(7)
    _write(root / "empty", b"")
    _write(root / "small", b"hello\n")
    _write(root / "big", rnd.randbytes(300_000))
    _write(root / "block-sized", rnd.randbytes(64 * 1024))
    _write(root / "setuid", b"#!/bin/sh\n", 0o4755)
    _write(root / "private", b"secret", 0o600)
    _write(root / "none", b"x", 0o000)
    (root / "a" / "b" / "c").mkdir(parents=True)
    _write(root / "a" / "b" / "c" / "deep", b"deep")
    (root / "many").mkdir()
    for i in range(300):  # a goodbye table of nine levels
        _write(root / "many" / f"f{i:03d}", str(i).encode())
    _write(root / "with space", b"s")
    _write(root / "ünïcødé-名前", b"u")
    _write(root / ("L" * long_name), b"long")
    _write(root / ".hidden", b"h")
    _write(root / os.fsdecode(b"bad\xffutf8"), b"b")
    os.symlink("small", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.symlink("a/b", root / "dirlink")
    os.symlink("x" * 1000, root / "longlink")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    _xattr(root / "small", "user.zeta", b"last")
    _xattr(root / "small", "user.alpha", b"first")
    _xattr(root / "small", "user.empty", b"")
    _xattr(root / "a", "user.dir", b"dirval")
    _xattr(root / "big", "user.big", rnd.randbytes(3000))
    if ROOT:
        os.mknod(root / "null", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "blk", 0o660 | stat.S_IFBLK, os.makedev(7, 200))
        _xattr(root / "small", "trusted.t", b"\x00\x01binary")
        _xattr(root / "fifo", "trusted.unseen", b"casync reads no xattrs of fifos")
        os.chown(root / "private", 1000, 1000)
        os.chown(root / "a", 12345, 23456)  # ids without names
        os.chown(root / "link", 33, 33, follow_symlinks=False)
        os.chown(root / "fifo", 65534, 65534)
    for i, name in enumerate(sorted(os.listdir(root))):
        t = 1_600_000_000_123_456_789 + i * 1_987_654_321
        os.utime(root / name, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(1_234_567_890_999_999_999, 1_234_567_890_999_999_999))


def build_metadata_tree(root: Path) -> None:
    """ACLs (also on a fifo), a file capability, SELinux labels, chattr flags, .caexclude."""
    root.mkdir()
    _write(root / "aclfile", b"acl")
    access = [(1, 6, U), (2, 4, 1000), (2, 7, 12345), (2, 5, 0), (4, 4, U), (8, 6, 33)]
    access += [(8, 2, 54321), (0x10, 7, U), (0x20, 4, U)]
    os.setxattr(root / "aclfile", catar_sys.ACL_XATTR_ACCESS, _acl(access))
    (root / "acldir").mkdir()
    default = [(1, 7, U), (2, 5, 1000), (4, 5, U), (8, 1, 34), (0x10, 7, U), (0x20, 0, U)]
    os.setxattr(root / "acldir", catar_sys.ACL_XATTR_DEFAULT, _acl(default))
    dir_access = [(1, 7, U), (4, 5, U), (8, 1, 34), (0x10, 5, U), (0x20, 0, U)]
    os.setxattr(root / "acldir", catar_sys.ACL_XATTR_ACCESS, _acl(dir_access))
    (root / "defonly").mkdir()
    os.setxattr(
        root / "defonly", catar_sys.ACL_XATTR_DEFAULT, _acl([(1, 7, U), (4, 5, U), (0x20, 1, U)])
    )
    os.mkfifo(root / "aclfifo")
    fifo_acl = [(1, 6, U), (2, 4, 1000), (4, 4, U), (0x10, 4, U), (0x20, 4, U)]
    os.setxattr(root / "aclfifo", catar_sys.ACL_XATTR_ACCESS, _acl(fifo_acl))
    _write(root / "capfile", b"cap")
    cap_net_raw = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # v2, +ep
    os.setxattr(root / "capfile", "security.capability", cap_net_raw)
    _write(root / "labelled", b"l")
    os.setxattr(root / "labelled", "security.selinux", b"system_u:object_r:etc_t:s0\x00")
    os.symlink("x", root / "labelledlink")
    _xattr(root / "labelledlink", "security.selinux", b"system_u:object_r:lnk_t:s0", follow=False)
    _write(root / "noatime", b"n")
    _write(root / "nodump", b"d")
    _write(root / "appendonly", b"a")
    (root / "syncdir").mkdir()
    for name, bit in [
        ("noatime", ff.FS_NOATIME_FL),
        ("nodump", ff.FS_NODUMP_FL),
        ("appendonly", ff.FS_APPEND_FL),
        ("syncdir", ff.FS_SYNC_FL),
    ]:
        _set_chattr(root / name, bit, bit)
    _write(root / "other.txt", b"o")
    _write(root / "x.tmp", b"t")
    (root / "sub" / "cache").mkdir(parents=True)
    _write(root / "sub" / "y.tmp", b"y")
    _write(root / "sub" / "keep.tmp", b"k")
    _write(root / "sub" / "cache" / "z", b"z")
    (root / "cache").mkdir()
    _write(root / "cache" / "w", b"w")
    _write(root / ".caexclude", b"# comment\n*.tmp\n!keep.tmp\n  /cache/  \nsub/cache\n")
    _write(root / "zero-mtime", b"0")
    os.utime(root / "zero-mtime", ns=(0, 0))


def _set_chattr(path: Path, value: int, mask: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        catar_sys.write_chattr(fd, value, mask)
    finally:
        os.close(fd)


def _clear_chattr(root: Path) -> None:
    """Drop append-only/immutable flags so a tree can be deleted."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            _set_chattr(path, 0, ff.FS_APPEND_FL | ff.FS_IMMUTABLE_FL)


@pytest.fixture(scope="module")
def rich_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rich") / "t"
    build_rich_tree(root)
    return root


@pytest.fixture(scope="module")
def extractable_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rich tree with a long name casync can still extract."""
    root = tmp_path_factory.mktemp("extractable") / "t"
    build_rich_tree(root, long_name=WHERE_CASYNC_CANNOT_EXTRACT)
    return root


@pytest.fixture(scope="module")
def metadata_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not ROOT:
        pytest.skip("ACLs, capabilities and chattr flags need root")
    root = tmp_path_factory.mktemp("meta") / "t"
    build_metadata_tree(root)
    yield root
    _clear_chattr(root)


def snapshot(root: Path) -> dict[bytes, dict[str, Any]]:
    """Everything a catar records about each node of a tree, by relative path."""
    out: dict[bytes, dict[str, Any]] = {}

    def visit(path: bytes, rel: bytes) -> None:
        st = os.lstat(path)
        item: dict[str, Any] = {
            "mode": st.st_mode,
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime": st.st_mtime_ns,
        }
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                item["sha"] = hashlib.sha256(f.read()).hexdigest()
        if stat.S_ISLNK(st.st_mode):
            item["link"] = os.readlink(path)
            item["label"] = catar_sys.get_xattr(path, "security.selinux", follow=False)
        else:
            for key, name in [
                ("acl", catar_sys.ACL_XATTR_ACCESS),
                ("default_acl", catar_sys.ACL_XATTR_DEFAULT),
                ("label", "security.selinux"),
                ("caps", "security.capability"),
            ]:
                raw = catar_sys.get_xattr(path, name)
                item[key] = catar_sys.parse_acl_xattr(raw) if raw and "acl" in key else raw
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            item["rdev"] = st.st_rdev
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            names = sorted(os.fsencode(n) for n in os.listxattr(path))
            item["xattrs"] = {
                n: os.getxattr(path, n) for n in names if n.startswith((b"user.", b"trusted."))
            }
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                item["chattr"] = catar_sys.read_chattr(fd) & ff.to_chattr(ff.WITH_CHATTR)
            finally:
                os.close(fd)
        out[rel] = item
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                visit(path + b"/" + name, rel + b"/" + name)

    visit(os.fsencode(root), b".")
    return out


def _encode(tree: Path, out: Path, args: list[str], **kwargs: Any) -> bytes:
    data = b"".join(encode(tree, make_flags_for(args), **kwargs))
    out.write_bytes(data)
    return data


def _casync_make(casync: str, tree: Path, out: Path, args: list[str]) -> bytes:
    run_casync(casync, "make", "--what=archive", *args, out, tree)
    return out.read_bytes()


# -- byte-identical to casync -------------------------------------------------------------

FLAG_SETS = [
    [],
    ["--with=unix"],
    ["--without=all"],
    ["--with=best"],
    ["--without=user-names"],
    ["--with=user-names"],  # names without ids: casync writes numeric names
    ["--with=sec-time", "--with=symlinks"],
    ["--with=nsec-time", "--with=32bit-uids", "--with=permissions"],
    ["--without=xattrs"],
    ["--with=fat"],
    ["--with=32bit-uids", "--with=usec-time", "--with=read-only"],
    ["--with=2sec-time", "--with=permissions", "--with=xattrs", "--with=fifos"],
    ["--with=16bit-uids", "--with=acl", "--with=sockets", "--with=device-nodes"],
    ["--digest=sha256", "--exclude-nodump=no"],
]


@pytest.mark.integration
@pytest.mark.parametrize("args", FLAG_SETS, ids=lambda a: " ".join(a) or "default")
def test_byte_identical_to_casync(
    rich_tree: Path, tmp_path: Path, casync: str, args: list[str]
) -> None:
    theirs = _casync_make(casync, rich_tree, tmp_path / "theirs.catar", args)
    ours = _encode(rich_tree, tmp_path / "ours.catar", args)
    assert len(ours) == len(theirs)
    assert ours == theirs


METADATA_FLAG_SETS = [
    [],
    ["--with=all"],
    ["--without=acl"],
    ["--without=selinux"],
    ["--without=fcaps", "--without=user-names"],
    ["--exclude-nodump=no"],
    ["--exclude-nodump=no", "--with=chattr"],
    ["--with=privileged"],
    ["--with=fuse"],
    ["--with=acl", "--without=32bit-uids", "--without=user-names"],
]


@pytest.mark.integration
@pytest.mark.parametrize("args", METADATA_FLAG_SETS, ids=lambda a: " ".join(a) or "default")
def test_byte_identical_with_acls_caps_labels_chattr_excludes(
    metadata_tree: Path, tmp_path: Path, casync: str, args: list[str]
) -> None:
    theirs = _casync_make(casync, metadata_tree, tmp_path / "theirs.catar", args)
    ours = _encode(metadata_tree, tmp_path / "ours.catar", args)
    assert ours == theirs
    names = {e.path for e in read_entries(ours)}
    assert {"x.tmp", "sub/y.tmp", "cache", "sub/cache"}.isdisjoint(names)  # .caexclude
    assert "sub/keep.tmp" in names
    assert ("nodump" in names) == ("--exclude-nodump=no" in args)


@pytest.mark.integration
def test_exclude_files_without_the_flag(metadata_tree: Path, tmp_path: Path, casync: str) -> None:
    # Debian's casync 2 obeys .caexclude even with --exclude-file=no (only the bit changes)
    args = ["--exclude-file=no"]
    theirs = _casync_make(casync, metadata_tree, tmp_path / "theirs.catar", args)
    assert _encode(metadata_tree, tmp_path / "a.catar", args, exclude_files=True) == theirs
    following_the_flag = _encode(metadata_tree, tmp_path / "b.catar", args)
    assert "x.tmp" in {e.path for e in read_entries(following_the_flag)}


@pytest.mark.integration
def test_depth_limit_like_casync(tmp_path: Path, casync: str) -> None:
    ok = tmp_path / "ok"
    ok.joinpath(*["d"] * 62).mkdir(parents=True)
    ok.joinpath(*["d"] * 62, "f").write_bytes(b"x")
    assert _encode(ok, tmp_path / "o.catar", []) == _casync_make(
        casync, ok, tmp_path / "c.catar", []
    )
    assert len(list(read_entries((tmp_path / "o.catar").read_bytes()))) == 64
    too_deep = ok.joinpath(*["d"] * 62, "e")
    too_deep.mkdir()
    too_deep.joinpath("f").write_bytes(b"x")
    with pytest.raises(UnsupportedFeature, match="64 levels"):
        _encode(ok, tmp_path / "o2.catar", [])
    with pytest.raises(AssertionError):
        _casync_make(casync, ok, tmp_path / "c2.catar", [])


@pytest.mark.integration
@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_ids_casync_cannot_store_are_refused_alike(tmp_path: Path, casync: str) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"")
    for uid, args in [(70000, ["--with=16bit-uids"]), (65535, [])]:
        os.chown(tree / "a", uid, uid)
        with pytest.raises(AssertionError):
            _casync_make(casync, tree, tmp_path / "c.catar", args)
        with pytest.raises(UnsupportedFeature, match=str(uid)):
            _encode(tree, tmp_path / "o.catar", args)
        # without ids nor names the owner is not looked at
        args = ["--without=all"]
        assert _encode(tree, tmp_path / "o.catar", args) == _casync_make(
            casync, tree, tmp_path / "c.catar", args
        )


# -- round trips --------------------------------------------------------------------------


@pytest.mark.integration
def test_casync_archive_extracts_to_the_original(
    rich_tree: Path, tmp_path: Path, casync: str
) -> None:
    theirs = _casync_make(casync, rich_tree, tmp_path / "theirs.catar", [])
    with open(tmp_path / "theirs.catar", "rb") as f:
        root = extract(f, tmp_path / "out")
    assert root.path == "."
    assert snapshot(tmp_path / "out") == snapshot(rich_tree)
    assert b"".join(encode(tmp_path / "out")) == theirs


@pytest.mark.integration
def test_our_archive_extracts_with_casync(
    extractable_tree: Path, tmp_path: Path, casync: str
) -> None:
    _encode(extractable_tree, tmp_path / "ours.catar", [])
    run_casync(casync, "extract", tmp_path / "ours.catar", tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(extractable_tree)


@pytest.mark.integration
def test_metadata_round_trips_both_ways(metadata_tree: Path, tmp_path: Path, casync: str) -> None:
    theirs = _casync_make(casync, metadata_tree, tmp_path / "theirs.catar", [])
    try:
        extract(theirs, tmp_path / "by-us")
        assert b"".join(encode(tmp_path / "by-us")) == theirs
        run_casync(casync, "extract", tmp_path / "theirs.catar", tmp_path / "by-casync")
        assert snapshot(tmp_path / "by-us") == snapshot(tmp_path / "by-casync")
        labels = snapshot(tmp_path / "by-us")
        assert labels[b"./capfile"]["caps"] == os.getxattr(
            metadata_tree / "capfile", "security.capability"
        )
        assert labels[b"./acldir"]["default_acl"] is not None
        assert labels[b"./appendonly"]["chattr"] == ff.FS_APPEND_FL
    finally:
        for name in ("by-us", "by-casync"):
            if (tmp_path / name).exists():
                _clear_chattr(tmp_path / name)


def test_our_round_trip(rich_tree: Path, tmp_path: Path) -> None:
    ours = b"".join(encode(rich_tree))
    extract(iter([ours[i : i + 1000] for i in range(0, len(ours), 1000)]), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(rich_tree)
    assert b"".join(encode(tmp_path / "out")) == ours


@pytest.mark.parametrize("args", [["--with=unix"], ["--with=fat"], ["--without=all"]])
def test_reduced_flags_round_trip(rich_tree: Path, tmp_path: Path, args: list[str]) -> None:
    flags = make_flags_for(args)
    ours = b"".join(encode(rich_tree, flags))
    extract(ours, tmp_path / "out")
    assert b"".join(encode(tmp_path / "out", flags)) == ours


@pytest.mark.integration
def test_listing_matches_casync(rich_tree: Path, tmp_path: Path, casync: str) -> None:
    theirs = _casync_make(casync, rich_tree, tmp_path / "a.catar", [])
    listed = run_casync(casync, "list", tmp_path / "a.catar").splitlines()
    entries = list(read_entries(theirs))
    assert [f"{stat.filemode(e.mode)} {_escape(os.fsencode(e.path))}" for e in entries] == listed
    by_path = {e.path: e for e in entries}
    small = by_path["small"]
    assert small.size == 6
    assert small.is_file
    assert dict(small.xattrs)[b"user.alpha"] == b"first"
    assert by_path["link"].symlink_target == b"small"
    assert by_path["a"].is_dir
    if ROOT:
        assert by_path["null"].rdev == (1, 3)
        assert (by_path["private"].user, by_path["private"].uid) == ("cloudsdk", 1000)
        assert (by_path["a"].user, by_path["a"].uid) == (None, 12345)
    assert by_path["."].mtime_ns == 1_234_567_890_999_999_999


def _escape(raw: bytes) -> str:
    return "".join(chr(c) if 0x20 < c < 0x7F and c != 0x5C else f"\\{c:03o}" for c in raw)


def test_walk_events(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"x" * 100_000)
    events = list(walk(b"".join(encode(tree))))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == kinds[1] == kinds[2] == "CatarEntry"
    assert kinds[-2:] == ["DirectoryEnd", "DirectoryEnd"]
    assert b"".join(e for e in events if isinstance(e, bytes)) == b"x" * 100_000
    assert [e.path for e in events if isinstance(e, DirectoryEnd)] == ["d", "."]


def test_encoder_streams_in_blocks_and_closes_its_files(rich_tree: Path) -> None:
    blocks = list(encode(rich_tree, block_size=4096))
    assert all(len(b) >= 4096 for b in blocks[:-1])
    assert max(len(b) for b in blocks) < 70_000
    before = len(os.listdir("/proc/self/fd"))
    stream = encode(rich_tree, block_size=4096)
    for _ in range(20):
        next(stream)
    assert len(os.listdir("/proc/self/fd")) > before
    stream.close()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(ValueError, match="block_size"):
        encode(rich_tree, block_size=0)


def test_non_directory_roots(tmp_path: Path) -> None:
    # an Aria extension: casync only archives directories
    f = tmp_path / "file"
    f.write_bytes(b"content")
    os.chmod(f, 0o640)
    os.utime(f, ns=(5, 1_500_000_000_000_000_001))
    data = b"".join(encode(f))
    (entry,) = read_entries(data)
    assert (entry.path, entry.size, entry.mode) == (".", 7, stat.S_IFREG | 0o640)
    extract(data, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"content"
    assert os.stat(tmp_path / "copy").st_mtime_ns == 1_500_000_000_000_000_001
    os.symlink("nowhere", tmp_path / "link")
    (entry,) = read_entries(b"".join(encode(tmp_path / "link")))
    assert entry.symlink_target == b"nowhere"
    os.symlink("file", tmp_path / "link-to-file")
    assert next(read_entries(b"".join(encode(tmp_path / "link-to-file")))).symlink_target
    os.mkfifo(tmp_path / "fifo")
    extract(b"".join(encode(tmp_path / "fifo")), tmp_path / "fifo2")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo2").st_mode)
    with pytest.raises(UnsupportedFeature, match="fifo"):
        b"".join(encode(tmp_path / "fifo", make_flags_for(["--with=unix", "--without=fifos"])))


def test_extract_refuses_a_non_empty_target(rich_tree: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_bytes(b"")
    with pytest.raises(FileExistsError):
        extract(b"".join(encode(rich_tree)), tmp_path / "busy")
    (tmp_path / "empty").mkdir()
    extract(b"".join(encode(rich_tree / "a")), tmp_path / "empty")
    assert (tmp_path / "empty" / "b" / "c" / "deep").read_bytes() == b"deep"


def test_extract_without_ownership_and_with_a_mask(rich_tree: Path, tmp_path: Path) -> None:
    data = b"".join(encode(rich_tree))
    extract(data, tmp_path / "out", restore_owner=False, mask=ff.WITH_UNIX & ~ff.WITH_SEC_TIME)
    assert os.stat(tmp_path / "out" / "setuid").st_mode & 0o7777 == 0o4755
    assert os.stat(tmp_path / "out" / "private").st_uid == os.geteuid()
    assert (
        os.stat(tmp_path / "out" / "small").st_mtime_ns != os.stat(rich_tree / "small").st_mtime_ns
    )
    assert not os.listxattr(tmp_path / "out" / "small")


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_owners_are_restored_by_name_else_by_number(tmp_path: Path) -> None:
    def owned(uid: int, user: bytes) -> bytes:
        return (
            _entry(stat.S_IFREG | 0o644, uid=uid)
            + _record(fmt.USER, user + b"\0")
            + _record(fmt.PAYLOAD, b"")
        )

    data = _directory([(b"known", owned(9999, b"www-data")), (b"unknown", owned(4242, b"zz9"))])
    extract(data, tmp_path / "out")
    assert os.stat(tmp_path / "out" / "known").st_uid == 33  # the name wins
    assert os.stat(tmp_path / "out" / "unknown").st_uid == 4242  # no such user here


# -- the pieces ---------------------------------------------------------------------------


def test_siphash_reference_vectors() -> None:
    key = bytes(range(16))
    assert siphash24(b"", key) == 0x726FDB47DD0E0E31
    assert siphash24(bytes(range(15)), key) == 0xA129CA6149BE45E5
    assert siphash24(bytes(range(8)), key) == 0x93F5F5799A932462
    with pytest.raises(ValueError, match="16 bytes"):
        siphash24(b"", b"short")


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 8, 9, 100, 300, 1000])
def test_bst_layout_is_a_search_tree(count: int) -> None:
    order = fmt.bst_order(count)
    assert sorted(order) == list(range(count))
    for slot, item in enumerate(order):
        if 2 * slot + 1 < count:
            assert order[2 * slot + 1] < item
        if 2 * slot + 2 < count:
            assert order[2 * slot + 2] > item


def test_exclude_rules() -> None:
    rules = catar_exclude.parse(b"*.o\n!keep.o\n/top\nbuild/\ndocs/*.tmp\n\n# c\n")
    test = catar_exclude.test
    assert test(rules, b"x.o", False)[0]
    assert not test(rules, b"keep.o", False)[0]
    assert not test(rules, b".o", False)[0]  # FNM_PERIOD: a leading dot is never a wildcard
    assert test(rules, b"top", False)[0]
    assert test(rules, b"build", True)[0]
    assert not test(rules, b"build", False)[0]
    excluded, below = test(rules, b"docs", True)
    assert not excluded
    assert test(below, b"a.tmp", False)[0]
    assert test(below, b"x.o", False)[0]  # unanchored rules apply at every depth
    assert not test(below, b"top", False)[0]  # anchored ones do not
    assert catar_exclude.parse(b"a//b")[0].children[0].name == b"b"  # slashes collapse
    for bad in (b"./x", b"a/../b", b"!", b"/", b"a/./b"):
        with pytest.raises(catar_exclude.ExcludeSyntaxError):
            catar_exclude.parse(bad)


# -- bad input ----------------------------------------------------------------------------


def _sample_tree(root: Path) -> None:
    root.mkdir()
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "f").write_bytes(b"nested")
    (root / "file").write_bytes(b"hello world")
    (root / "empty").write_bytes(b"")
    os.symlink("file", root / "link")
    os.mkfifo(root / "fifo")
    _xattr(root / "file", "user.a", b"1")
    _xattr(root / "file", "user.b", b"2")


@functools.cache
def sample_archive() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        _sample_tree(Path(tmp) / "t")
        return b"".join(encode(Path(tmp) / "t"))


def _objects(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, size, type) of each object, payload data skipped."""
    out, offset = [], 0
    while offset < len(data):
        size, type_ = struct.unpack_from("<QQ", data, offset)
        out.append((offset, size, type_))
        offset += size
    return out


def _invalid(data: bytes | bytearray) -> InvalidArchive:
    with pytest.raises(InvalidArchive) as info:
        for _ in walk(bytes(data)):
            pass
    assert info.value.offset is not None
    return info.value


def test_sample_is_valid() -> None:
    data = sample_archive()
    paths = [e.path for e in read_entries(data)]
    assert paths == [".", "dir", "dir/sub", "dir/sub/f", "empty", "fifo", "file", "link"]


def test_truncation_anywhere_is_refused(tmp_path: Path) -> None:
    data = sample_archive()
    cuts = {0}
    for offset, _, _ in _objects(data):
        cuts |= {offset, offset + 1, offset + 8, offset + 15, offset + 16, offset + 20}
    for cut in sorted(c for c in cuts if c < len(data)):
        error = _invalid(data[:cut])
        assert "truncated" in str(error) or "empty" in str(error), (cut, error)
        target = tmp_path / f"out{cut}"
        with pytest.raises(InvalidArchive):
            extract(data[:cut], target)
    assert {p.name for p in tmp_path.iterdir()} <= {f"out{c}" for c in cuts}


def test_garbage_is_refused() -> None:
    rnd = __import__("random").Random(3)
    for size in (1, 15, 16, 17, 64, 100, 4096):
        _invalid(rnd.randbytes(size))
    _invalid(b"\0" * 64)
    _invalid(sample_archive() + b"\0")  # trailing data


def test_flipped_header_bytes_are_refused() -> None:
    data = sample_archive()
    for offset, _, _ in _objects(data):
        for at in (offset, offset + 1, offset + 7, offset + 8, offset + 15):
            for xor in (0x01, 0x80, 0xFF):
                bad = bytearray(data)
                bad[at] ^= xor
                _invalid(bad)


def _replace_u64(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<Q", value) + data[at + 8 :]


def test_goodbye_tables_that_lie_are_refused() -> None:
    data = sample_archive()
    goodbye_at, size, type_ = _objects(data)[-1]
    assert type_ == fmt.GOODBYE
    assert size == 16 + 24 * 6  # five entries and the tail
    first, tail = goodbye_at + 16, goodbye_at + size - 24
    lies = [
        _replace_u64(data, first + 16, struct.unpack_from("<Q", data, first + 16)[0] ^ 1),
        _replace_u64(data, first, struct.unpack_from("<Q", data, first)[0] + 64),
        _replace_u64(data, first + 8, 1),
        _replace_u64(data, tail, struct.unpack_from("<Q", data, tail)[0] - 1),
        _replace_u64(data, tail + 16, 0x1234),
        data[:first]
        + data[first + 24 : first + 48]
        + data[first : first + 24]
        + data[first + 48 :],
    ]
    for bad in lies:
        assert "GOODBYE" in str(_invalid(bad))


def _entry(mode: int, flags: int = ff.DEFAULT, *, uid: int = 0, mtime: int = 0) -> bytes:
    return fmt.ENTRY_STRUCT.pack(64, fmt.ENTRY, flags, mode, 0, uid, 0, mtime)


def _record(type_: int, body: bytes) -> bytes:
    return fmt.header(type_, 16 + len(body)) + body


def _directory(children: list[tuple[bytes, bytes]], root: bytes | None = None) -> bytes:
    """A directory archive of ready-made child nodes, with a correct goodbye table."""
    out = bytearray(root if root is not None else _entry(stat.S_IFDIR | 0o755))
    items = []
    for name, node in children:
        start = len(out)
        out += _record(fmt.FILENAME, name + b"\0") + node
        items.append(fmt.GoodbyeItem(fmt.filename_hash(name), start, len(out)))
    out += fmt.goodbye_record(items, len(out), 0)
    return bytes(out)


def _file(data: bytes = b"x") -> bytes:
    return _entry(stat.S_IFREG | 0o644) + _record(fmt.PAYLOAD, data)


def test_hand_made_archive_is_valid(tmp_path: Path) -> None:
    data = _directory([(b"a", _file(b"A")), (b"b", _directory([(b"c", _file())]))])
    assert [e.path for e in read_entries(data)] == [".", "a", "b", "b/c"]
    extract(data, tmp_path / "out")
    assert (tmp_path / "out" / "b" / "c").read_bytes() == b"x"


@pytest.mark.parametrize("name", [b"../x", b"..", b".", b"a/b", b"/etc", b"", b"a\0b"])
def test_path_traversal_names_are_refused(tmp_path: Path, name: bytes) -> None:
    data = _directory([(name, _file(b"pwned"))])
    error = _invalid(data)
    assert "name" in str(error) or "string" in str(error) or "FILENAME" in str(error)
    (tmp_path / "box").mkdir()
    with pytest.raises(InvalidArchive):
        extract(data, tmp_path / "box" / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["box"]
    assert [p.name for p in (tmp_path / "box").iterdir()] == ["out"]
    assert list((tmp_path / "box" / "out").iterdir()) == []


def test_symlink_then_same_name_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = _entry(stat.S_IFLNK | 0o777) + _record(fmt.SYMLINK, os.fsencode(outside) + b"\0")
    data = _directory([(b"a", link), (b"a", _directory([(b"pwned", _file())], None))])
    assert "sorted" in str(_invalid(data))
    with pytest.raises(InvalidArchive):
        extract(data, tmp_path / "out")
    assert list(outside.iterdir()) == []
    unsorted = _directory([(b"b", _file()), (b"a", _file())])
    assert "sorted" in str(_invalid(unsorted))


@pytest.mark.parametrize(
    ("node", "words"),
    [
        (_entry(stat.S_IFREG | 0o644) + fmt.header(fmt.XATTR, 2**40), "XATTR object of"),
        (_entry(stat.S_IFREG | 0o644) + fmt.header(0x1234, 16), "unknown"),
        (_entry(stat.S_IFREG | 0o644, ff.DEFAULT | 1 << 34), "bit 34"),
        (_entry(stat.S_IFREG | 0o644, ff.DEFAULT | ff.WITH_SEC_TIME), "not normalized"),
        (_entry(stat.S_IFREG | 0o644, ff.WITH_UNIX) + _record(fmt.PAYLOAD, b""), "differ"),
        (_entry(stat.S_IFREG | 0o644, mtime=2**64 - 1) + _record(fmt.PAYLOAD, b""), "mtime"),
        (_entry(stat.S_IFREG | 0o644, uid=2**32 - 1) + _record(fmt.PAYLOAD, b""), "uid"),
        (_entry(0o644) + _record(fmt.PAYLOAD, b""), "file type"),
        (_entry(stat.S_IFLNK | 0o644), "symlink"),
        (_entry(stat.S_IFREG | 0o644) + _record(fmt.SYMLINK, b"x\0"), "not a symlink"),
        (_entry(stat.S_IFREG | 0o644) + _record(fmt.USER, b"bad name\0"), "name"),
        (_entry(stat.S_IFREG | 0o644) + _record(fmt.USER, b"root\0"), "root"),
        (
            _entry(stat.S_IFREG | 0o644)
            + _record(fmt.GROUP, b"g\0")
            + _record(fmt.USER, b"u\0")
            + _record(fmt.PAYLOAD, b""),
            "out of order",
        ),
        (
            _entry(stat.S_IFREG | 0o644)
            + _record(fmt.XATTR, b"user.b\0")
            + _record(fmt.XATTR, b"user.a\0")
            + _record(fmt.PAYLOAD, b""),
            "sorted",
        ),
        (_entry(stat.S_IFREG | 0o644) + _record(fmt.XATTR, b"system.x\0v"), "user.*"),
        (_entry(stat.S_IFREG | 0o644) + _record(fmt.FILENAME, b"x\0"), "contents"),
        (_entry(stat.S_IFREG | 0o644) + _entry(stat.S_IFREG | 0o644), "second ENTRY"),
        (_entry(stat.S_IFCHR | 0o644) + _record(fmt.DEVICE, b"\0" * 8), "DEVICE object"),
        (
            _entry(stat.S_IFCHR | 0o600) + fmt.DEVICE_STRUCT.pack(32, fmt.DEVICE, 1 << 12, 0),
            "device number",
        ),
        (
            _entry(stat.S_IFREG | 0o644)
            + fmt.ACL_ID_STRUCT.pack(32, fmt.ACL_USER, 1000, 4)
            + _record(fmt.PAYLOAD, b""),
            "ACL_GROUP_OBJ",
        ),
    ],
)
def test_bad_records_are_named(node: bytes, words: str) -> None:
    error = _invalid(_directory([(b"f", node)]))
    assert words in str(error)
    assert error.offset is not None
    assert error.offset >= 64


def test_records_casync_rarely_writes_are_read() -> None:
    node = (
        _entry(stat.S_IFREG | 0o644)
        + _record(fmt.SELINUX, b"system_u:object_r:etc_t:s0\0")
        + _record(fmt.FCAPS, b"\x01\x00\x00\x02" + bytes(16))
        + fmt.QUOTA_PROJID_STRUCT.pack(24, fmt.QUOTA_PROJID, 42)
        + _record(fmt.PAYLOAD, b"")
    )
    entry = list(read_entries(_directory([(b"f", node)])))[1]
    assert entry.selinux_label == b"system_u:object_r:etc_t:s0"
    assert entry.fcaps is not None
    assert entry.quota_projid == 42
    zero = _entry(stat.S_IFREG | 0o644) + fmt.QUOTA_PROJID_STRUCT.pack(24, fmt.QUOTA_PROJID, 0)
    assert "out of range" in str(_invalid(_directory([(b"f", zero)])))
    caps_on_dir = _entry(stat.S_IFDIR | 0o755) + _record(fmt.FCAPS, b"x")
    assert "not a regular file" in str(_invalid(_directory([(b"d", caps_on_dir)])))


# -- fuzzing ------------------------------------------------------------------------------

_INTERESTING = [0, 1, 15, 16, 17, 64, 2**32, 2**63, 2**64 - 1]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(sample_archive())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "word", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "word":
            value = draw(st.sampled_from(_INTERESTING) | st.integers(0, 2**64 - 1))
            data[at : at + 8] = struct.pack("<Q", value)
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_fuzzed_archives_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        for _ in walk(data):
            pass
    except InvalidArchive:
        pass


_SAFE_TO_RESTORE = ff.WITH_MASK & ~(
    ff.WITH_CHATTR | ff.WITH_FCAPS | ff.WITH_QUOTA_PROJID | ff.WITH_SELINUX
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_archives_never_escape_the_target(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp) / "box"
        box.mkdir()
        try:
            entry = extract(data, box / "out", mask=_SAFE_TO_RESTORE)
            assert isinstance(entry, CatarEntry)
        except InvalidArchive:
            pass
        assert [p.name for p in Path(tmp).iterdir()] == ["box"]
        assert [p.name for p in box.iterdir()] in (["out"], [])
