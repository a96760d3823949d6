"""Stores made of stores: a chain read in order, a cache in front of a remote, and
:func:`open_store`, which opens a store from a desync-style location.

==============================================  ==========================================
location                                        store
==============================================  ==========================================
``/srv/store``, ``store``, ``file:///srv/store``  :class:`~.local.LocalStore`
``http://host:port/path/``, ``https://...``     :class:`~.http.HttpStore`
``s3+http://host:port/bucket/prefix``           :class:`~.s3.S3Store` (``s3+https`` for
                                                TLS; ``?lookup=path|dns|auto`` as desync)
``sftp://user@host:port/path``                  :class:`~.sftp.SftpStore` (absolute path)
==============================================  ==========================================
"""

from __future__ import annotations

import itertools
import os
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from ..chunks import CHUNK_SIZE_LIMIT, open_chunk
from ..errors import ChunkMissing, StoreError, StoreReadOnly
from ..ids import ChunkId, hasher
from .base import Store

T = TypeVar("T")


def _warn(event: str, **fields: object) -> None:
    """Log a warning; structlog is imported on first use (it costs the CLI ~30 ms)."""
    import structlog

    structlog.get_logger("aria_storage.stores").warning(event, **fields)


class ChainStore(Store):
    """Stores read in order; writes go to the first writable one.

    :meth:`get` answers from the first store that has the chunk. When none has it,
    :class:`ChunkMissing` names every store tried; when some of them failed instead
    (a server down), a :class:`StoreError` names those failures, since the chunk
    may well be there. :meth:`put` and :meth:`remove` use the first writable store
    (:class:`StoreReadOnly` when there is none); :meth:`ids` is the union of all.
    """

    def __init__(self, stores: Iterable[Store]) -> None:
        self.stores = list(stores)
        if not self.stores:
            raise StoreError("a chain needs at least one store", store="chain[]")
        self.location = "chain[" + ", ".join(s.location for s in self.stores) + "]"
        self.writable = any(s.writable for s in self.stores)

    def _writer(self) -> Store:
        for store in self.stores:
            if store.writable:
                return store
        raise StoreReadOnly(
            f"store {self.location}: none of its stores is writable", store=self.location
        )

    def _failed(self, chunk_id: ChunkId, errors: list[StoreError]) -> StoreError:
        detail = "; ".join(str(e) for e in errors)
        return StoreError(
            f"chunk {chunk_id}: not found in {self.location}, and {len(errors)} of its "
            f"stores failed: {detail}",
            store=self.location,
        )

    def _first(self, chunk_id: ChunkId, read: Callable[[Store], T]) -> T:
        """``read`` on the first store holding the chunk; ChunkMissing if none does."""
        errors: list[StoreError] = []
        for store in self.stores:
            try:
                return read(store)
            except ChunkMissing:
                continue
            except StoreError as exc:
                errors.append(exc)
        if errors:
            raise self._failed(chunk_id, errors)
        tried = ", ".join(s.location for s in self.stores)
        raise ChunkMissing(
            f"chunk {chunk_id} is in none of the stores tried: {tried}", chunk_id=str(chunk_id)
        )

    def get(self, chunk_id: ChunkId) -> bytes:
        return self._first(chunk_id, lambda store: store.get(chunk_id))

    def has(self, chunk_id: ChunkId) -> bool:
        errors: list[StoreError] = []
        for store in self.stores:
            try:
                if store.has(chunk_id):
                    return True
            except StoreError as exc:
                errors.append(exc)
        if errors:
            raise self._failed(chunk_id, errors)
        return False

    def size(self, chunk_id: ChunkId) -> int:
        return self._first(chunk_id, lambda store: store.size(chunk_id))

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._writer().put(chunk_id, blob)

    def remove(self, chunk_id: ChunkId) -> None:
        self._writer().remove(chunk_id)

    def ids(self) -> Iterator[ChunkId]:
        if len(self.stores) == 1:
            yield from self.stores[0].ids()
            return
        seen: set[bytes] = set()
        for chunk_id in itertools.chain.from_iterable(s.ids() for s in self.stores):
            if chunk_id not in seen:
                seen.add(chunk_id)
                yield chunk_id

    def close(self) -> None:
        errors: list[BaseException] = []
        for store in self.stores:
            try:
                store.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        return f"ChainStore({self.stores!r})"


class CacheStore(Store):
    """``cache`` in front of ``remote``.

    A read tries the cache; on a miss it reads the remote, checks the chunk (it must
    decompress and hash to its id with ``digest``: :class:`~..errors.CorruptChunk`
    otherwise, and nothing is cached) and writes it into the cache. A cache that
    fails is logged and bypassed. A write goes to the remote, then to the cache (a
    failing cache write is only logged); a removal to both. :meth:`ids` lists the
    remote (the cache holds a subset). Writable when the remote is.
    """

    def __init__(
        self,
        cache: Store,
        remote: Store,
        *,
        digest: str = "sha512-256",
        max_size: int = CHUNK_SIZE_LIMIT,
    ) -> None:
        hasher(digest)
        self.cache = cache
        self.remote = remote
        self.digest = digest
        self.max_size = max_size
        self.location = f"cache[{cache.location} -> {remote.location}]"
        self.writable = remote.writable

    def get(self, chunk_id: ChunkId) -> bytes:
        try:
            return self.cache.get(chunk_id)
        except ChunkMissing:
            pass
        except StoreError as exc:
            _warn("cache_read_failed", cache=self.cache.location, error=str(exc))
        blob = self.remote.get(chunk_id)
        open_chunk(blob, chunk_id, self.digest, max_size=self.max_size)
        if self.cache.writable:
            try:
                self.cache.put(chunk_id, blob)
            except StoreError as exc:
                _warn("cache_write_failed", cache=self.cache.location, error=str(exc))
        return blob

    def has(self, chunk_id: ChunkId) -> bool:
        try:
            if self.cache.has(chunk_id):
                return True
        except StoreError as exc:
            _warn("cache_read_failed", cache=self.cache.location, error=str(exc))
        return self.remote.has(chunk_id)

    def size(self, chunk_id: ChunkId) -> int:
        try:
            return self.cache.size(chunk_id)
        except ChunkMissing:
            pass
        except StoreError as exc:
            _warn("cache_read_failed", cache=self.cache.location, error=str(exc))
        return self.remote.size(chunk_id)

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._refuse_write()
        self.remote.put(chunk_id, blob)
        if self.cache.writable:
            try:
                self.cache.put(chunk_id, blob)
            except StoreError as exc:
                _warn("cache_write_failed", cache=self.cache.location, error=str(exc))

    def remove(self, chunk_id: ChunkId) -> None:
        self._refuse_write()
        self.remote.remove(chunk_id)
        if self.cache.writable:
            self.cache.remove(chunk_id)

    def ids(self) -> Iterator[ChunkId]:
        return self.remote.ids()

    def close(self) -> None:
        try:
            self.remote.close()
        finally:
            self.cache.close()

    def __repr__(self) -> str:
        return f"CacheStore({self.cache!r}, {self.remote!r})"


# -- locations ---------------------------------------------------------------------------

_LOOKUP: Final = {"auto": "auto", "path": "path", "dns": "virtual"}
_KNOWN: Final = "a local path, file://, http://, https://, s3+http://, s3+https:// or sftp://"


def open_store(location: str, **options: Any) -> Store:
    """The store at a desync-style ``location`` (see the module documentation).

    ``options`` go to the store's constructor (``writable=False``, ``token=`` for
    HTTP, ``region=`` / ``access_key=`` for S3, ``key_filename=`` / ``known_hosts=``
    for SFTP...). S3 credentials not given are read as desync reads them, from
    ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``, ``S3_SESSION_TOKEN`` and ``S3_REGION``, then
    boto3's chain (``AWS_*``). An unknown scheme is a :class:`StoreError` naming it.
    """
    if "://" not in location:
        from .local import LocalStore

        return LocalStore(location, **options)
    scheme = location.split("://", 1)[0].lower()
    parts = urllib.parse.urlsplit(location)
    if scheme == "file":
        from .local import LocalStore

        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"{location!r}: a file:// store must be on this host", store=location)
        return LocalStore(urllib.parse.unquote(parts.path), **options)
    if scheme in ("http", "https"):
        from .http import HttpStore

        return HttpStore(location, **options)
    if scheme in ("s3+http", "s3+https"):
        return _open_s3(location, parts, scheme[3:], options)
    if scheme == "sftp":
        return _open_sftp(location, parts, options)
    hint = "; casync's ssh:// protocol is not supported, use sftp://" if scheme == "ssh" else ""
    raise StoreError(
        f"unknown store scheme {scheme!r} in {location!r}; expected {_KNOWN}{hint}",
        store=location,
    )


def _open_s3(
    location: str, parts: urllib.parse.SplitResult, protocol: str, options: dict[str, Any]
) -> Store:
    from .s3 import S3Store

    if not parts.hostname:
        raise StoreError(f"{location!r}: no S3 host", store=location)
    if parts.username is not None:
        raise StoreError(
            f"{location!r}: credentials in the URL are not supported; "
            "use S3_ACCESS_KEY / S3_SECRET_KEY or access_key= / secret_key=",
            store=location,
        )
    path = urllib.parse.unquote(parts.path).strip("/")
    if not path:
        raise StoreError(
            f"{location!r}: no bucket (s3+http://host:port/bucket/prefix)", store=location
        )
    bucket, _, prefix = path.partition("/")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"lookup"})
    if unknown:
        raise StoreError(
            f"{location!r}: unknown parameter {unknown[0]!r} (only lookup=)", store=location
        )
    lookup = query.get("lookup", ["auto"])[-1]
    if lookup not in _LOOKUP:
        raise StoreError(
            f"{location!r}: lookup must be auto, path or dns, not {lookup!r}", store=location
        )
    options.setdefault("addressing_style", _LOOKUP[lookup])
    for option, variable in (
        ("access_key", "S3_ACCESS_KEY"),
        ("secret_key", "S3_SECRET_KEY"),
        ("session_token", "S3_SESSION_TOKEN"),
        ("region", "S3_REGION"),
    ):
        if options.get(option) is None and os.environ.get(variable):
            options[option] = os.environ[variable]
    endpoint = f"{protocol}://{parts.netloc}"
    return S3Store(bucket, prefix, endpoint_url=endpoint, **options)


def _open_sftp(location: str, parts: urllib.parse.SplitResult, options: dict[str, Any]) -> Store:
    from .sftp import SftpStore

    try:
        port = parts.port
    except ValueError as exc:
        raise StoreError(f"{location!r}: {exc}", store=location) from None
    if not parts.hostname:
        raise StoreError(f"{location!r}: no SFTP host", store=location)
    if parts.password is not None:
        raise StoreError(
            f"{location!r}: a password in the URL is not supported; use keys or password=",
            store=location,
        )
    if parts.query or parts.fragment:
        raise StoreError(f"{location!r}: no query or fragment expected", store=location)
    path = urllib.parse.unquote(parts.path)
    if not path or path == "/":
        raise StoreError(f"{location!r}: no store directory in the URL", store=location)
    if parts.username is not None:
        options.setdefault("user", urllib.parse.unquote(parts.username))
    if port is not None:
        options.setdefault("port", port)
    return SftpStore(parts.hostname, path, **options)
