"""A chunk store in a local directory, in casync's layout: ``<root>/<xxxx>/<id>.cacnk``.

``xxxx`` is the first four hex digits of the id. Writes go to a hidden temporary file in
the chunk's directory, then are renamed over the final name, so a crash or a concurrent
writer never leaves a partial chunk under a final name (temporaries start with ``.`` and
end ``.tmp``; :meth:`LocalStore.sweep_temporaries` removes stale ones).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import ChunkMissing, StoreError
from ..ids import ChunkId
from .base import Store

_NAME = re.compile(r"^([0-9a-f]{64})\.cacnk$")
_DIR = re.compile(r"^[0-9a-f]{4}$")


class LocalStore(Store):
    """casync's directory store. ``create`` makes the root when missing.

    ``fsync`` flushes each chunk (and its directory) before the rename: slower, and
    what a store that must survive power loss needs.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        writable: bool = True,
        create: bool = True,
        fsync: bool = False,
    ) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.writable = writable
        self.fsync = fsync
        if not self.root.is_dir():
            if create and writable:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot create store {self.root}: {exc}", store=self.location
                    ) from None
            else:
                raise StoreError(f"store {self.root} is not a directory", store=self.location)

    def path(self, chunk_id: ChunkId) -> Path:
        """Where the chunk lives (whether or not it is there)."""
        h = chunk_id.hex()
        return self.root / h[:4] / f"{h}.cacnk"

    def get(self, chunk_id: ChunkId) -> bytes:
        try:
            with open(self.path(chunk_id), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ChunkMissing(
                f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
            ) from None
        except OSError as exc:
            raise StoreError(
                f"store {self.location}: reading {chunk_id}: {exc}", store=self.location
            ) from None

    def has(self, chunk_id: ChunkId) -> bool:
        return self.path(chunk_id).is_file()

    def size(self, chunk_id: ChunkId) -> int:
        try:
            return self.path(chunk_id).stat().st_size
        except FileNotFoundError:
            raise ChunkMissing(
                f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
            ) from None
        except OSError as exc:
            raise StoreError(f"store {self.location}: {exc}", store=self.location) from None

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._refuse_write()
        final = self.path(chunk_id)
        if final.is_file():
            return
        tmp = final.parent / f".{final.name}.{secrets.token_hex(6)}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                final.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(blob)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            if self.fsync:
                dfd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(
                f"store {self.location}: writing {chunk_id}: {exc}", store=self.location
            ) from None

    def remove(self, chunk_id: ChunkId) -> None:
        self._refuse_write()
        try:
            os.unlink(self.path(chunk_id))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"store {self.location}: removing {chunk_id}: {exc}", store=self.location
            ) from None

    def ids(self) -> Iterator[ChunkId]:
        try:
            tops = os.scandir(self.root)
        except OSError as exc:
            raise StoreError(f"store {self.location}: {exc}", store=self.location) from None
        with tops:
            for top in tops:
                if not (_DIR.match(top.name) and top.is_dir()):
                    continue
                with os.scandir(top.path) as entries:
                    for entry in entries:
                        m = _NAME.match(entry.name)
                        if m and m.group(1).startswith(top.name):
                            yield ChunkId(bytes.fromhex(m.group(1)))

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temporaries left by interrupted writes; returns how many were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for top in self.root.iterdir():
            if not (_DIR.match(top.name) and top.is_dir()):
                continue
            for entry in top.iterdir():
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            entry.unlink()
                            removed += 1
        return removed

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"
