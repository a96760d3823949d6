"""The catalogue's index files, named by their content (blocking; call from threads).

A version's index is written under ``<indexes>/<xx>/<sha256>.caibx`` (a file version)
or ``.caidx`` (a directory version, an archive), named by the SHA-256 of its bytes:
identical versions share one file, and a file changed on disk is caught when read.

:class:`IndexGuard` keeps the files an add is writing (and has not committed yet)
from being deleted as orphans by the garbage collector.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, Literal

from ..data.api import Row
from .errors import InvalidIndex, StorageError
from .index import Index

VersionKind = Literal["blob", "archive"]
"""What a version holds: a file (``blob``, a ``.caibx``) or a directory tree
(``archive``, a ``.caidx`` of its catar archive)."""

KINDS: Final[tuple[VersionKind, ...]] = ("blob", "archive")
INDEX_SUFFIX: Final = ".caibx"
ARCHIVE_INDEX_SUFFIX: Final = ".caidx"
SUFFIXES: Final[dict[VersionKind, str]] = {"blob": INDEX_SUFFIX, "archive": ARCHIVE_INDEX_SUFFIX}
_INDEX_FILE: Final = re.compile(r"^([0-9a-f]{64})\.ca(?:ibx|idx)$")


def index_digest(data: bytes) -> str:
    """The name of an index file: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def index_relpath(digest: str, kind: VersionKind = "blob") -> str:
    """Where the index file of digest ``digest`` lives, under the index directory."""
    return f"{digest[:2]}/{digest}{SUFFIXES[kind]}"


def row_kind(row: Row) -> VersionKind:
    """The kind of the version in ``row`` (a ``storage_versions`` row)."""
    kind = str(row.get("kind") or "blob")
    if kind not in KINDS:
        raise InvalidIndex(
            f"asset {row.get('asset')!r} version {row.get('number')}: unknown kind {kind!r}"
        )
    return kind


class IndexGuard:
    """Index digests an add is writing and has not committed yet (thread-safe).

    The add registers the digest before it writes (or finds) the file and releases
    it after its transaction; the collector deletes an orphan index file only under
    the guard's lock and only if no add holds its digest.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: Counter[str] = Counter()

    def hold(self, digest: str) -> None:
        with self.lock:
            self.pending[digest] += 1

    def release(self, digest: str) -> None:
        with self.lock:
            self.pending[digest] -= 1
            if self.pending[digest] <= 0:
                del self.pending[digest]


class IndexFiles:
    """The content-addressed index files under ``root`` (blocking; call from threads)."""

    def __init__(self, root: Path, guard: IndexGuard) -> None:
        self.root = root
        self.guard = guard

    def path(self, digest: str, kind: VersionKind = "blob") -> Path:
        return self.root / index_relpath(digest, kind)

    def write(self, index: Index, kind: VersionKind = "blob") -> str:
        """Write ``index`` under its digest (unless a good copy is there) and hold the
        digest in the guard; the caller releases it after committing."""
        data = index.to_bytes()
        digest = index_digest(data)
        self.guard.hold(digest)
        try:
            path = self.path(digest, kind)
            try:
                if path.is_file() and index_digest(path.read_bytes()) == digest:
                    return digest
                path.parent.mkdir(parents=True, exist_ok=True)
                index.write(path)
            except OSError as exc:
                raise StorageError(
                    f"cannot write index file {path}: {exc.strerror or exc}"
                ) from None
        except BaseException:
            self.guard.release(digest)
            raise
        return digest

    def read(self, digest: str, label: str, kind: VersionKind = "blob") -> Index:
        """The index stored under ``digest``, checked against it.

        Raises:
            InvalidIndex: the file is missing, unreadable, changed since it was
                written (its SHA-256 differs) or not a valid index; names ``label``.
        """
        path = self.path(digest, kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidIndex(f"{label}: its index file is missing", path=str(path)) from None
        except OSError as exc:
            raise InvalidIndex(
                f"{label}: cannot read its index file: {exc.strerror or exc}", path=str(path)
            ) from None
        if index_digest(data) != digest:
            raise InvalidIndex(
                f"{label}: the index file does not match its recorded SHA-256 {digest[:16]}...: "
                "it was changed or is corrupt on disk",
                path=str(path),
            )
        try:
            return Index.parse(data, name=str(path))
        except InvalidIndex as exc:
            raise InvalidIndex(f"{label}: {exc}") from None

    def scan(self) -> Iterator[tuple[str, Path]]:
        """Every index file (``.caibx`` and ``.caidx``): (digest, path)."""
        if not self.root.is_dir():
            return
        for top in self.root.iterdir():
            if len(top.name) != 2 or not top.is_dir():
                continue
            for entry in top.iterdir():
                match = _INDEX_FILE.match(entry.name)
                if match and match[1].startswith(top.name):
                    yield match[1], entry

    def remove_unused(self, used: set[str], grace: float, now: float, known: set[str]) -> int:
        """Delete index files no live version uses: at once when a (retired or
        deleted) version named them, after ``grace`` seconds when no row ever did (an
        add that failed before its commit). Never one an add holds. How many went."""
        removed = 0
        for digest, path in list(self.scan()):
            if digest in used:
                continue
            with self.guard.lock:
                if digest in self.guard.pending:
                    continue
                try:
                    if digest not in known and path.stat().st_mtime > now - grace:
                        continue
                    path.unlink()
                    removed += 1
                except OSError:
                    continue
        return removed


def label(asset: str, number: int) -> str:
    """How messages name a version: ``asset 'hero' version 2``."""
    return f"asset {asset!r} version {number}"


def read_live(files: IndexFiles, rows: Sequence[Row]) -> tuple[dict[str, Index], dict[str, str]]:
    """The indexes of ``rows`` (versions, blobs and archives alike) by digest, and the
    errors of those that cannot be read (``asset@N`` → message)."""
    indexes: dict[str, Index] = {}
    errors: dict[str, str] = {}
    for row in rows:
        digest = str(row["index_digest"])
        if digest in indexes:
            continue
        try:
            kind = row_kind(row)
            indexes[digest] = files.read(digest, label(str(row["asset"]), int(row["number"])), kind)
        except InvalidIndex as exc:
            errors[f"{row['asset']}@{row['number']}"] = str(exc)
    return indexes, errors
