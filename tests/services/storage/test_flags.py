"""Feature flags: casync's bits, names, normalization, and what ``casync make`` writes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aria_actors.services.storage import flags as ff
from aria_actors.services.storage.errors import UnsupportedFeature

from .casync import find_casync, run_casync


@pytest.fixture(scope="session")
def casync_bin() -> str:
    """Debian's casync (skipped without it, a failure in CI)."""
    return find_casync()


def test_bits_match_casync() -> None:
    # values from casync's caformat.h
    assert ff.WITH_QUOTA_PROJID == 1 << 32
    assert ff.EXCLUDE_NODUMP == 1 << 63
    assert ff.SHA512_256 == 1 << 61
    assert ff.ARIA_BLAKE3 == 0x0800000000000000
    assert ff.WITH_MASK == (1 << 33) - 1
    assert ff.FEATURE_FLAGS_MAX == ff.WITH_MASK | 0xF000000000000000
    assert ff.DEFAULT == 0xB0000001FFEFFE26
    assert ff.ARIA_BLAKE3 & ff.FEATURE_FLAGS_MAX == 0
    assert ff.WITH_UNIX == 0x1F09
    assert ff.WITH_BEST & ff.WITH_16BIT_UIDS == 0


def test_parse_and_format() -> None:
    assert ff.parse_with("best") == ff.WITH_BEST
    assert ff.parse_with("sec-time") == ff.WITH_SEC_TIME
    assert ff.parse_with("all") == ff.WITH_MASK
    assert ff.parse_with_list("unix, xattrs") == ff.WITH_UNIX | ff.WITH_XATTRS
    assert ff.parse_with_list(["fat-attrs", "chattr"]) == ff.WITH_FAT_ATTRS | ff.WITH_CHATTR
    with pytest.raises(UnsupportedFeature, match="'bogus'"):
        ff.parse_with("bogus")
    assert ff.format_with(ff.WITH_UNIX) == [
        "16bit-uids",
        "sec-time",
        "permissions",
        "symlinks",
        "device-nodes",
        "fifos",
        "sockets",
    ]
    assert ff.format_with(ff.DEFAULT)[:3] == ["32bit-uids", "user-names", "nsec-time"]
    assert ff.format_with(ff.EXCLUDE_FILE | ff.SHA512_256) == []
    assert "exclude-nodump" in ff.describe(ff.DEFAULT)
    assert "aria-blake3" in ff.describe(ff.ARIA_BLAKE3)
    assert "unknown:0x400000000" in ff.describe(1 << 34)


@given(st.integers(min_value=0, max_value=ff.WITH_MASK))
def test_format_then_parse_is_identity(bits: int) -> None:
    assert ff.parse_with_list(ff.format_with(bits)) == bits


def test_normalize_like_casync() -> None:
    assert (
        ff.normalize(ff.WITH_NSEC_TIME | ff.WITH_SEC_TIME | ff.WITH_2SEC_TIME) == ff.WITH_NSEC_TIME
    )
    assert ff.normalize(ff.WITH_USEC_TIME | ff.WITH_SEC_TIME) == ff.WITH_USEC_TIME
    assert ff.normalize(ff.WITH_16BIT_UIDS | ff.WITH_32BIT_UIDS) == ff.WITH_32BIT_UIDS
    assert ff.normalize(ff.WITH_ACL) == ff.WITH_ACL | ff.WITH_32BIT_UIDS | ff.WITH_USER_NAMES
    assert ff.normalize(ff.WITH_ACL | ff.WITH_16BIT_UIDS | ff.WITH_PERMISSIONS) == (
        ff.WITH_ACL | ff.WITH_16BIT_UIDS
    )
    assert ff.normalize(ff.WITH_PERMISSIONS | ff.WITH_READ_ONLY) == ff.WITH_PERMISSIONS
    assert ff.normalize(ff.EXCLUDE_NODUMP | ff.WITH_FLAG_NODUMP) == ff.EXCLUDE_NODUMP
    assert ff.normalize(ff.WITH_SUBVOLUME_RO) == ff.WITH_SUBVOLUME_RO | ff.WITH_SUBVOLUME
    assert ff.normalize(ff.ARIA_BLAKE3 | ff.SHA512_256) == ff.ARIA_BLAKE3
    assert ff.normalize(ff.WITH_MASK | ff.EXCLUDE_NODUMP | ff.EXCLUDE_FILE | ff.SHA512_256) == (
        ff.DEFAULT
    )
    assert ff.are_normalized(ff.DEFAULT)
    assert not ff.are_normalized(ff.WITH_SEC_TIME | ff.WITH_2SEC_TIME)
    assert not ff.are_normalized(ff.WITH_ACL)


@given(st.integers(min_value=0, max_value=2**64 - 2))
def test_normalize_is_idempotent_or_refuses(bits: int) -> None:
    if bits & ~ff.KNOWN:
        with pytest.raises(UnsupportedFeature, match="bit"):
            ff.normalize(bits)
        return
    once = ff.normalize(bits)
    assert ff.normalize(once) == once
    assert ff.are_normalized(once)


def test_unknown_bits_are_named() -> None:
    with pytest.raises(UnsupportedFeature, match=r"bit 34 \(0x400000000\)"):
        ff.normalize(ff.DEFAULT | 1 << 34)
    with pytest.raises(UnsupportedFeature, match="bit 59"):
        ff.normalize(ff.ARIA_BLAKE3, aria=False)
    with pytest.raises(UnsupportedFeature, match="reserved"):
        ff.normalize(2**64 - 1)
    with pytest.raises(UnsupportedFeature):
        ff.check_known(-1)
    assert ff.normalize(ff.ARIA_BLAKE3) == ff.ARIA_BLAKE3


def test_masks_time_and_digests() -> None:
    assert ff.normalize_mask(ff.WITH_SEC_TIME) & ff.WITH_NSEC_TIME
    assert ff.normalize_mask(ff.WITH_16BIT_UIDS) & ff.WITH_32BIT_UIDS
    assert ff.normalize_mask(ff.WITH_ACL) & ff.WITH_READ_ONLY
    assert ff.normalize_mask(2**64 - 1) == 2**64 - 1
    assert ff.normalize_mask(1 << 40) == 0
    assert ff.time_granularity_ns(ff.DEFAULT) == 1
    assert ff.time_granularity_ns(ff.WITH_USEC_TIME) == 1000
    assert ff.time_granularity_ns(ff.WITH_SEC_TIME) == 10**9
    assert ff.time_granularity_ns(ff.WITH_2SEC_TIME) == 2 * 10**9
    assert ff.time_granularity_ns(0) is None
    for digest in ("sha512-256", "sha256", "blake3"):
        assert ff.digest_of(ff.flags_for_digest(digest)) == digest
    with pytest.raises(UnsupportedFeature):
        ff.flags_for_digest("md5")


def test_chattr_and_fat_maps() -> None:
    assert ff.from_chattr(ff.FS_NODUMP_FL | ff.FS_IMMUTABLE_FL | 0x80000) == (
        ff.WITH_FLAG_NODUMP | ff.WITH_FLAG_IMMUTABLE
    )
    assert ff.to_chattr(ff.WITH_CHATTR) == sum(native for _, native in ff.CHATTR_MAP)
    assert ff.from_fat_attrs(0x02 | 0x20) == ff.WITH_FLAG_HIDDEN | ff.WITH_FLAG_ARCHIVE
    assert ff.to_fat_attrs(ff.WITH_FAT_ATTRS) == 0x26
    assert ff.from_fs_magic(ff.TMPFS_MAGIC) & ff.WITH_XATTRS == 0
    assert ff.from_fs_magic(ff.EXT4_SUPER_MAGIC) & ff.WITH_QUOTA_PROJID
    assert ff.from_fs_magic(ff.MSDOS_SUPER_MAGIC) == ff.WITH_FAT
    assert ff.from_fs_magic(0x1234) & ff.WITH_ACL == 0


# -- against casync --------------------------------------------------------------------


@pytest.mark.integration
def test_casync_knows_the_same_single_names(casync_bin: str) -> None:
    out = run_casync(casync_bin, "--with=help")
    names = out.split(":", 1)[1].split()
    assert names == [name for name, bits in ff.WITH_NAMES if bits & (bits - 1) == 0]


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--with=unix"],
        ["--without=all"],
        ["--without=all", "--with=unix"],
        ["--with=best"],
        ["--with=fat"],
        ["--with=fuse", "--without=xattrs"],
        ["--with=privileged"],
        ["--with=acl", "--with=16bit-uids"],
        ["--without=user-names", "--without=sec-time"],
        ["--with=sec-time", "--with=usec-time", "--with=read-only", "--with=permissions"],
        ["--exclude-nodump=no", "--with=flag-nodump"],
        ["--exclude-submounts=yes", "--exclude-file=no", "--digest=sha256"],
    ],
)
def test_make_flags_is_what_casync_writes(tmp_path: Path, casync_bin: str, args: list[str]) -> None:
    (tmp_path / "d").mkdir()
    run_casync(casync_bin, "make", "--what=archive", *args, tmp_path / "a.catar", tmp_path / "d")
    raw = (tmp_path / "a.catar").read_bytes()
    written = struct.unpack_from("<Q", raw, 16)[0]  # the root ENTRY's feature flags
    assert make_flags_for(args) == written, ff.describe(written)


def make_flags_for(args: list[str]) -> int:
    """Our flags for casync's command-line options."""
    with_: list[str] = []
    without: list[str] = []
    switches: dict[str, bool] = {}
    digest = "sha512-256"
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "--with":
            with_.append(value)
        elif key == "--without":
            without.append(value)
        elif key == "--digest":
            digest = value
        else:
            switches[key[2:].replace("-", "_")] = value == "yes"
    return ff.make_flags(with_, without, digest=digest, **switches)
