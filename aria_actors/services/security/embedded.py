"""The embedded secret store: every secret in one encrypted file on the node.

:class:`EmbeddedStore` implements :class:`~.api.SecretStore` (``backend =
"embedded"``) and :class:`~.api.DataKeys`. It needs nothing but a 32-byte master key
(see :mod:`.masterkey`) and a file path.

The file::

    b"ARIASEC" + bytes([FORMAT])      8-byte header, also the AES-GCM associated data
    nonce                             12 random bytes, new for every write
    AES-256-GCM(file key, nonce, msgpack document, header)

The document is ``{path: {created, updated, current, versions: [{version, created,
data | None, deleted, destroyed}]}}`` (times: Unix seconds). The file key and the data
key-encryption key are derived from the master key with HKDF-SHA256 under distinct
``info`` labels, so neither use of the master key can be turned against the other.

Durability and safety:

- A write goes to a temporary file in the same directory (mode 0600), is flushed and
  fsynced, replaces the store with ``os.replace`` and the directory is fsynced: a
  crash leaves the old file or the new one, never a mix.
- A file that does not decrypt or parse raises :class:`~.api.StoreCorrupt` naming the
  file and the cause, and the store then refuses every operation: the file is never
  overwritten. Nor is a file that changed on disk since this store last read or wrote
  it (another process, a restored backup): the store refuses to clobber it. One store
  instance owns one file.
- A missing file is an empty store; it (and its directory, mode 0700) is created by
  the first write.

From asyncio: the file is read, decrypted, encrypted and written in a worker thread
(``run_blocking``). After the first load the state is kept in memory, so reads never
touch the file; writes are serialised by an ``asyncio.Lock`` and the in-memory state
changes only once the new file is in place. A write whose caller is cancelled still
completes (and lands) in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..._runtime.blocking import run_blocking
from .api import (
    Secret,
    SecretMetadata,
    SecretNotFound,
    SecretsError,
    SecretsUnavailable,
    SecretVersion,
    StoreCorrupt,
    StoreHealth,
    VersionConflict,
    check_path,
)

MAGIC: Final = b"ARIASEC"
FORMAT: Final = 1
HEADER: Final = MAGIC + bytes([FORMAT])
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32

DATA_KEY_FORMAT: Final = 1
"""The first byte of a wrapped data key: ``bytes([DATA_KEY_FORMAT]) + nonce + AES-GCM``."""
WRAPPED_DATA_KEY_SIZE: Final = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE

_FILE_KEY_INFO: Final = b"aria-security/embedded-store/file/v1"
_DATA_KEY_INFO: Final = b"aria-security/embedded-store/data-keys/v1"


class _Version(msgspec.Struct, frozen=True):
    version: int
    created: float
    data: dict[str, str] | None
    deleted: bool = False
    destroyed: bool = False


class _Entry(msgspec.Struct, frozen=True):
    created: float
    updated: float
    current: int
    versions: list[_Version]


_Document = dict[str, _Entry]
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Document)

# (device, inode, size, mtime in ns) of the file as last read or written; None: absent.
_Signature = tuple[int, int, int, int] | None


def derive_key(master: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose (``info``), derived from ``master`` with HKDF-SHA256."""
    return HKDF(algorithm=SHA256(), length=KEY_SIZE, salt=None, info=info).derive(master)


class EmbeddedStore:
    """Secrets in one AES-256-GCM encrypted file at ``path``, under the master ``key``.

    ``max_versions`` versions of each secret are kept; older ones are dropped from
    the file (their numbers are never reused while the secret exists). Nothing is
    read before the first operation (or :meth:`open`, or ``async with``).

    Raises (constructor):
        TypeError: ``key`` is not bytes.
        ValueError: ``key`` is not 32 bytes, or ``max_versions`` is below 1.
    """

    backend: str = "embedded"

    def __init__(self, path: Path, key: bytes, max_versions: int = 10) -> None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError(f"the master key must be bytes, not {type(key).__name__}")
        if len(key) != KEY_SIZE:
            raise ValueError(f"the master key must be {KEY_SIZE} bytes, not {len(key)}")
        if isinstance(max_versions, bool) or not isinstance(max_versions, int):
            raise TypeError("max_versions must be an int")
        if max_versions < 1:
            raise ValueError(f"max_versions must be at least 1, not {max_versions}")
        self.path = Path(path)
        self.max_versions = max_versions
        self._file_cipher = AESGCM(derive_key(bytes(key), _FILE_KEY_INFO))
        self._kek = AESGCM(derive_key(bytes(key), _DATA_KEY_INFO))
        self._doc: _Document = {}
        self._signature: _Signature = None
        self._loaded = False
        self._corrupt: StoreCorrupt | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r}, max_versions={self.max_versions})"

    async def __aenter__(self) -> EmbeddedStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- opening -------------------------------------------------------------------

    async def open(self) -> None:
        """Read and decrypt the file (once; later calls return at once).

        Raises:
            StoreCorrupt: the file does not decrypt (wrong key, altered bytes), is
                truncated, has another header, or does not parse. Every later
                operation raises it again; the file is never written.
            SecretsUnavailable: the file exists but cannot be read, or the store is closed.
        """
        await self._ready()

    async def _ready(self) -> None:
        if self._closed:
            raise SecretsUnavailable(f"the embedded secret store {self.path} is closed")
        if self._corrupt is not None:
            raise self._refusal()
        if self._loaded:
            return
        async with self._lock:
            if self._closed or self._loaded or self._corrupt is not None:
                pass  # closed, loaded or found corrupt while this task waited
            else:
                try:
                    self._doc, self._signature = await run_blocking(self._load_file)
                except StoreCorrupt as exc:
                    self._corrupt = exc
                    raise
                self._loaded = True
        await self._ready()

    def _refusal(self) -> StoreCorrupt:
        assert self._corrupt is not None
        return StoreCorrupt(
            f"{self._corrupt} (the store refuses to work and never overwrites the file; "
            "restore it from a backup or fix the master key, then restart)"
        )

    def _load_file(self) -> tuple[_Document, _Signature]:
        try:
            with open(self.path, "rb") as file:
                blob = file.read()
                info = os.fstat(file.fileno())
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            raise SecretsUnavailable(
                f"cannot read the secret store {self.path}: {exc.strerror or exc}"
            ) from exc
        return self._decrypt(blob), (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def _decrypt(self, blob: bytes) -> _Document:
        where = f"secret store {self.path}"
        if len(blob) < len(HEADER) + NONCE_SIZE + TAG_SIZE:
            raise StoreCorrupt(f"{where} is truncated ({len(blob)} bytes)")
        if blob[: len(MAGIC)] != MAGIC:
            raise StoreCorrupt(f"{where} is not an Aria secret store (bad magic header)")
        if blob[len(MAGIC)] != FORMAT:
            raise StoreCorrupt(
                f"{where} has format version {blob[len(MAGIC)]}, this node reads {FORMAT}"
            )
        nonce = blob[len(HEADER) : len(HEADER) + NONCE_SIZE]
        try:
            plain = self._file_cipher.decrypt(nonce, blob[len(HEADER) + NONCE_SIZE :], HEADER)
        except InvalidTag as exc:
            raise StoreCorrupt(
                f"{where} does not decrypt: wrong master key, or the file was altered or truncated"
            ) from exc
        try:
            document = _decoder.decode(plain)
        except msgspec.DecodeError as exc:
            raise StoreCorrupt(f"{where} decrypts but does not parse: {exc}") from exc
        for path, entry in document.items():
            problem = _inconsistency(path, entry)
            if problem:
                raise StoreCorrupt(f"{where} decrypts but is inconsistent: {problem}")
        return document

    # -- writing -------------------------------------------------------------------

    async def _write(self, change: Callable[[_Document], _Document | None]) -> None:
        """Apply ``change`` (pure: returns a new document, or None for no change) and
        persist the result; only then does the in-memory state change. The work runs
        in its own task so that a cancelled caller cannot leave the lock released while
        a write is still in flight."""
        await self._ready()
        task = asyncio.ensure_future(self._locked_write(change))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_consume_result)
            raise

    async def _locked_write(self, change: Callable[[_Document], _Document | None]) -> None:
        async with self._lock:
            if self._closed:
                raise SecretsUnavailable(f"the embedded secret store {self.path} is closed")
            if self._corrupt is not None:
                raise self._refusal()
            new = change(self._doc)
            if new is None:
                return
            try:
                self._signature = await run_blocking(self._persist, new, self._signature)
            except StoreCorrupt as exc:
                self._corrupt = exc
                raise
            except _NotDurable as exc:
                self._doc, self._signature = new, exc.signature
                raise SecretsUnavailable(
                    f"the secret store {self.path} was written but its directory could not "
                    f"be synced ({exc.error}): the change may not survive a power loss"
                ) from exc.error
            self._doc = new

    def _persist(self, document: _Document, expected: _Signature) -> _Signature:
        """Encrypt ``document`` under a new nonce and replace the file with it
        atomically; the new file's signature. Runs in a worker thread.

        Raises:
            StoreCorrupt: the file on disk is not the one this store last read or wrote.
            SecretsUnavailable: an ``OSError`` before the replace (nothing changed).
            _NotDurable: the replace happened but the directory fsync failed.
        """
        nonce = secrets.token_bytes(NONCE_SIZE)
        blob = HEADER + nonce + self._file_cipher.encrypt(nonce, _encoder.encode(document), HEADER)
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            current = _signature_of(self.path)
        except OSError as exc:
            raise SecretsUnavailable(
                f"cannot write the secret store {self.path}: {exc.strerror or exc}"
            ) from exc
        if current != expected:
            raise StoreCorrupt(
                f"secret store {self.path} changed on disk since this node read it (another "
                "process, or a restored file); refusing to overwrite it"
            )
        temporary = directory / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                info = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise SecretsUnavailable(
                f"cannot write the secret store {self.path}: {exc.strerror or exc}; "
                "the previous file is intact"
            ) from exc
        signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        try:
            _fsync_directory(directory)
        except OSError as exc:
            raise _NotDurable(signature, exc) from exc
        return signature

    # -- SecretStore ---------------------------------------------------------------

    async def get(self, path: str, version: int | None = None) -> Secret:
        """The current version of ``path``, or ``version``.

        Raises:
            ValueError: an invalid path, or a version below 1.
            TypeError: a version that is not an int.
            SecretNotFound: no such secret; no such version (never made, or dropped
                beyond ``max_versions``); or that version was deleted or destroyed.
            StoreCorrupt, SecretsUnavailable: see :meth:`open`.
        """
        check_path(path)
        if version is not None:
            _check_version(version)
        await self._ready()
        entry = self._entry(path)
        number = entry.current if version is None else version
        found = _find(entry, number)
        if found is None:
            if number > entry.current:
                raise SecretNotFound(
                    f"secret {path!r} has no version {number} (the current one is {entry.current})",
                    path,
                )
            raise SecretNotFound(
                f"version {number} of secret {path!r} was dropped (only the last "
                f"{self.max_versions} versions are kept)",
                path,
            )
        if found.destroyed or found.data is None:
            raise SecretNotFound(f"version {number} of secret {path!r} was destroyed", path)
        if found.deleted:
            raise SecretNotFound(f"version {number} of secret {path!r} was deleted", path)
        return Secret(path=path, version=number, data=dict(found.data), created=found.created)

    async def put(self, path: str, data: Mapping[str, str], cas: int | None = None) -> int:
        """Store ``data`` as a new version of ``path``; its number.

        With ``cas``, only if the current version is ``cas`` (0: only if the secret
        does not exist). The oldest versions beyond ``max_versions`` are dropped.

        Raises:
            ValueError: an invalid path, a negative ``cas``, an empty key, or a string
                that cannot be encoded (a lone surrogate).
            TypeError: ``data`` is not a mapping of str to str, or ``cas`` not an int.
            VersionConflict: ``cas`` is not the current version.
            StoreCorrupt, SecretsUnavailable: see :meth:`open` and the module docstring;
                a failed write changes nothing.
        """
        check_path(path)
        values = _check_data(path, data)
        if cas is not None:
            if isinstance(cas, bool) or not isinstance(cas, int):
                raise TypeError(f"cas must be an int or None, not {type(cas).__name__}")
            if cas < 0:
                raise ValueError(f"cas must be 0 or a version number, not {cas}")
        made: list[int] = []

        def change(doc: _Document) -> _Document:
            now = time.time()
            entry = doc.get(path)
            current = 0 if entry is None else entry.current
            if cas is not None and cas != current:
                raise VersionConflict(
                    f"check-and-set on secret {path!r} expected version {cas}, but the "
                    f"current one is {current}"
                    + (" (the secret does not exist)" if entry is None else ""),
                    path,
                )
            number = current + 1
            kept = [] if entry is None else entry.versions
            versions = [*kept, _Version(version=number, created=now, data=values)]
            new = dict(doc)
            new[path] = _Entry(
                created=now if entry is None else entry.created,
                updated=now,
                current=number,
                versions=versions[-self.max_versions :],
            )
            made.append(number)
            return new

        await self._write(change)
        return made[0]

    async def delete(self, path: str) -> None:
        """Remove ``path``: every version and its metadata (a later put starts at 1).

        Raises:
            ValueError: an invalid path.
            SecretNotFound: no such secret.
            StoreCorrupt, SecretsUnavailable: see :meth:`put`.
        """
        check_path(path)

        def change(doc: _Document) -> _Document:
            if path not in doc:
                raise SecretNotFound(f"no secret at {path!r}", path)
            return {key: value for key, value in doc.items() if key != path}

        await self._write(change)

    async def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Wipe the data of these versions for good; their metadata stays (``destroyed``).

        Versions already destroyed, or already dropped beyond ``max_versions``, are
        skipped. An empty list changes nothing.

        Raises:
            ValueError: an invalid path, or a version below 1.
            TypeError: a version that is not an int.
            SecretNotFound: no such secret, or a version above the current one.
            StoreCorrupt, SecretsUnavailable: see :meth:`put`.
        """
        check_path(path)
        wanted = set()
        for number in versions:
            _check_version(number)
            wanted.add(number)

        def change(doc: _Document) -> _Document | None:
            entry = doc.get(path)
            if entry is None:
                raise SecretNotFound(f"no secret at {path!r}", path)
            beyond = sorted(number for number in wanted if number > entry.current)
            if beyond:
                raise SecretNotFound(
                    f"secret {path!r} has no version {', '.join(map(str, beyond))} (the "
                    f"current one is {entry.current})",
                    path,
                )
            if not any(v.version in wanted and not v.destroyed for v in entry.versions):
                return None
            new = dict(doc)
            new[path] = msgspec.structs.replace(
                entry,
                updated=time.time(),
                versions=[
                    msgspec.structs.replace(v, data=None, destroyed=True)
                    if v.version in wanted
                    else v
                    for v in entry.versions
                ],
            )
            return new

        await self._write(change)

    async def list(self, prefix: str = "") -> list[str]:
        """Every secret path equal to ``prefix`` or under it, by whole segments, sorted.

        ``"a/b"`` matches ``a/b`` and ``a/b/c`` but not ``a/bc``; ``""`` matches all;
        a trailing ``/`` is ignored.

        Raises:
            ValueError: an invalid prefix.
            StoreCorrupt, SecretsUnavailable: see :meth:`open`.
        """
        stem = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
        if stem != "":
            check_path(stem)
        await self._ready()
        if not stem:
            return sorted(self._doc)
        under = stem + "/"
        return sorted(path for path in self._doc if path == stem or path.startswith(under))

    async def metadata(self, path: str) -> SecretMetadata:
        """The kept versions and the times of ``path`` (never its values).

        Raises:
            ValueError: an invalid path.
            SecretNotFound: no such secret.
            StoreCorrupt, SecretsUnavailable: see :meth:`open`.
        """
        check_path(path)
        await self._ready()
        entry = self._entry(path)
        return SecretMetadata(
            path=path,
            current_version=entry.current,
            versions=[
                SecretVersion(
                    version=v.version, created=v.created, deleted=v.deleted, destroyed=v.destroyed
                )
                for v in entry.versions
            ],
            created=entry.created,
            updated=entry.updated,
        )

    async def health(self) -> StoreHealth:
        """OK unless the file is corrupt, unreadable, or the store closed. Never raises."""
        try:
            await self._ready()
        except SecretsError as exc:
            return StoreHealth(backend=self.backend, ok=False, detail=str(exc))
        except Exception as exc:  # never raise: report it
            return StoreHealth(
                backend=self.backend, ok=False, detail=f"{type(exc).__name__}: {exc}"
            )
        return StoreHealth(
            backend=self.backend, ok=True, detail=f"{len(self._doc)} secrets in {self.path}"
        )

    async def close(self) -> None:
        """Wait for a write in progress, then refuse every later operation.

        Idempotent; the in-memory copy of the secrets is dropped.
        """
        async with self._lock:
            self._closed = True
            self._doc = {}

    # -- DataKeys ------------------------------------------------------------------

    async def generate_data_key(self) -> tuple[bytes, bytes]:
        """A fresh random 32-byte data key and its wrapped form (61 bytes).

        The wrapped form is ``bytes([DATA_KEY_FORMAT]) + nonce + AES-256-GCM(kek,
        key)`` with the format byte as associated data; the kek is derived from the
        master key with HKDF. Wrapping 32 bytes takes microseconds, less than a thread
        hop, so it runs on the loop.

        Raises:
            StoreCorrupt, SecretsUnavailable: the store is corrupt (perhaps a wrong
                master key, which would make the data key unrecoverable) or closed.
        """
        await self._ready()
        key = secrets.token_bytes(KEY_SIZE)
        nonce = secrets.token_bytes(NONCE_SIZE)
        header = bytes([DATA_KEY_FORMAT])
        return key, header + nonce + self._kek.encrypt(nonce, key, header)

    async def unwrap_data_key(self, wrapped: bytes) -> bytes:
        """The data key inside ``wrapped`` (made by :meth:`generate_data_key`).

        Raises:
            TypeError: ``wrapped`` is not bytes.
            StoreCorrupt: not a wrapped key of this format and length, altered, or
                wrapped under another master key.
            SecretsUnavailable: the store is closed.
        """
        if not isinstance(wrapped, bytes | bytearray | memoryview):
            raise TypeError(f"a wrapped data key is bytes, not {type(wrapped).__name__}")
        await self._ready()
        blob = bytes(wrapped)
        if len(blob) != WRAPPED_DATA_KEY_SIZE or blob[0] != DATA_KEY_FORMAT:
            raise StoreCorrupt(
                f"not a wrapped data key of format {DATA_KEY_FORMAT} "
                f"({len(blob)} bytes, {WRAPPED_DATA_KEY_SIZE} expected)"
            )
        nonce = blob[1 : 1 + NONCE_SIZE]
        try:
            return self._kek.decrypt(nonce, blob[1 + NONCE_SIZE :], blob[:1])
        except InvalidTag as exc:
            raise StoreCorrupt(
                "the wrapped data key does not decrypt: altered, or wrapped under another "
                "master key"
            ) from exc

    # -- helpers -------------------------------------------------------------------

    def _entry(self, path: str) -> _Entry:
        entry = self._doc.get(path)
        if entry is None:
            raise SecretNotFound(f"no secret at {path!r}", path)
        return entry


class _NotDurable(Exception):
    """The file was replaced but the directory fsync failed (internal)."""

    def __init__(self, signature: _Signature, error: OSError) -> None:
        self.signature = signature
        self.error = error
        super().__init__(str(error))


def _consume_result(task: asyncio.Future[None]) -> None:
    """Retrieve the outcome of a write whose caller was cancelled (no warning)."""
    if not task.cancelled():
        task.exception()


def _inconsistency(path: str, entry: _Entry) -> str:
    """What is wrong with a decoded entry ("" if nothing): the invariants of ``put``."""
    try:
        check_path(path)
    except ValueError:
        return f"an invalid secret path {path!r}"
    numbers = [v.version for v in entry.versions]
    if not numbers or numbers[-1] != entry.current:
        return f"{path!r}: the current version {entry.current} is not the last one kept"
    if numbers[0] < 1 or any(a >= b for a, b in itertools.pairwise(numbers)):
        return f"{path!r}: version numbers {numbers} are not increasing from 1"
    if any((v.data is None) != v.destroyed for v in entry.versions):
        return f"{path!r}: a version's data and its destroyed flag disagree"
    return ""


def _find(entry: _Entry, number: int) -> _Version | None:
    for version in entry.versions:
        if version.version == number:
            return version
    return None


def _check_version(version: object) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"a version number is an int, not {type(version).__name__}")
    if version < 1:
        raise ValueError(f"version numbers start at 1, not {version}")


def _check_data(path: str, data: object) -> dict[str, str]:
    """A private copy of ``data`` after checking it maps str to str.

    Raises:
        TypeError: not a mapping, or a key or value that is not a str.
        ValueError: an empty key, or a string that is not valid Unicode text.
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"the data of secret {path!r} must be a mapping of str to str, not "
            f"{type(data).__name__}"
        )
    copy: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"secret {path!r}: keys must be str, not {type(key).__name__}")
        if not isinstance(value, str):
            # Never show the value: it is a secret.
            raise TypeError(
                f"secret {path!r}: the value of {key!r} must be a str, not {type(value).__name__}"
            )
        if not key:
            raise ValueError(f"secret {path!r}: an empty key")
        for text in (key, value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"secret {path!r}: key {key!r} or its value is not valid Unicode text "
                    "(a lone surrogate)"
                ) from None
        copy[key] = value
    return copy


def _signature_of(path: Path) -> _Signature:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _fsync_directory(directory: Path) -> None:
    """fsync a directory so a rename in it is durable (skipped where unsupported)."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - file systems without directory fsync
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
