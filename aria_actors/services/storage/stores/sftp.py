"""A chunk store over SFTP, in casync's layout: ``<path>/<xxxx>/<id>.cacnk``.

One SSH connection (paramiko) carries up to ``channels`` SFTP channels; a thread
takes a free channel for each operation (or waits for one), so the store is
thread-safe and that many operations run at once. A connection that breaks is
opened again on the next operation, and an operation that broke with it is tried
once more (every operation is idempotent).

Writes go to a hidden temporary name in the chunk's directory
(``.<id>.cacnk.<random>.tmp``), which is renamed over the final name once
complete: with OpenSSH's ``posix-rename@openssh.com`` extension when the server
has it, else with a plain SFTP rename (which refuses to replace: a chunk that
appeared meanwhile is the same chunk). An interrupted write leaves at most a
temporary, never a partial chunk under its final name. The ``xxxx`` directories
are made on demand.

The server's host key is checked against ``known_hosts`` (the user's
``~/.ssh/known_hosts`` when not given); an unknown or changed key, a refused
login, an unreachable host or an I/O failure is a :class:`StoreError` naming the
store and what went wrong.
"""

from __future__ import annotations

import contextlib
import getpass
import posixpath
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn, TypeVar

import paramiko

from ..errors import ChunkMissing, StoreError
from ..ids import ChunkId
from .base import Store
from .http import MAX_STORED_SIZE

T = TypeVar("T")

_NAME: Final = re.compile(r"([0-9a-f]{64})\.cacnk")
_DIR: Final = re.compile(r"[0-9a-f]{4}")


class _UnknownHostKey(paramiko.SSHException):
    """The server's key is not in known_hosts."""


class _Reject(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise _UnknownHostKey(f"{key.get_name()} {key.get_base64()}")


class _Accept(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        return None


class _Broken(Exception):
    """The channel or the connection died under an operation."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause


class SftpStore(Store):
    """casync's layout over SFTP. See the module documentation.

    ``path`` is the store's directory on the server (absolute, or relative to the
    login directory); ``create`` makes it when missing (if writable). ``user``
    defaults to the local user name. Authentication uses ``key_filename`` (only it,
    when given), else ``password``, else the SSH agent and ``~/.ssh``'s keys.
    ``verify_host_key=False`` accepts any server key (insecure; for throwaway
    test servers only).
    """

    def __init__(
        self,
        host: str,
        path: str,
        *,
        user: str | None = None,
        port: int = 22,
        key_filename: str | None = None,
        password: str | None = None,
        known_hosts: str | None = None,
        verify_host_key: bool = True,
        timeout: float = 30.0,
        channels: int = 4,
        writable: bool = True,
        create: bool = True,
        max_size: int = MAX_STORED_SIZE,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user or getpass.getuser()
        self.root = path.rstrip("/") or "/"
        self.writable = writable
        self.timeout = timeout
        self.max_size = max_size
        self.key_filename = key_filename
        self.known_hosts = known_hosts
        self.verify_host_key = verify_host_key
        self._password = password
        shown = f"[{host}]" if ":" in host else host
        sep = "" if self.root.startswith("/") else "/~/"
        self.location = f"sftp://{self.user}@{shown}:{port}{sep}{self.root}"
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, channels))
        self._idle: list[paramiko.SFTPClient] = []
        self._client: paramiko.SSHClient | None = None
        self._posix_rename: bool | None = None
        self._closed = False
        with self._lock:
            self._connect()
        try:
            info = self._call(lambda sftp: _stat_or_none(sftp, self.root))
            if info is None and create and writable:
                self._call(lambda sftp: self._makedirs(sftp, self.root))
            elif info is None or not stat.S_ISDIR(info.st_mode or 0):
                what = "does not exist" if info is None else "is not a directory"
                raise StoreError(f"store {self.location}: {self.root} {what}", store=self.location)
        except OSError as exc:
            self.close()
            self._io_error("opening", exc)
        except BaseException:
            self.close()
            raise

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> paramiko.SSHClient:
        """A live connection (made anew when there is none); call with the lock held."""
        if self._closed:
            raise StoreError(f"store {self.location} is closed", store=self.location)
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return client
            client.close()
            self._client = None
            self._idle.clear()
        client = paramiko.SSHClient()
        try:
            if self.verify_host_key:
                if self.known_hosts is not None:
                    client.load_host_keys(self.known_hosts)
                else:
                    client.load_system_host_keys()
                client.set_missing_host_key_policy(_Reject())
            else:
                client.set_missing_host_key_policy(_Accept())
            only_key = self.key_filename is not None
            client.connect(
                self.host,
                self.port,
                username=self.user,
                password=self._password,
                key_filename=self.key_filename,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
                allow_agent=not only_key and self._password is None,
                look_for_keys=not only_key and self._password is None,
            )
        except BaseException as exc:
            client.close()
            self._connect_failed(exc)
        self._client = client
        return client

    def _connect_failed(self, exc: BaseException) -> NoReturn:
        where = f"store {self.location}"
        peer = f"{self.host}:{self.port}"
        if isinstance(exc, _UnknownHostKey):
            source = self.known_hosts or "~/.ssh/known_hosts"
            text = (
                f"{where}: the host key of {peer} ({exc}) is not in {source}; "
                "add it (ssh-keyscan) or pass known_hosts="
            )
        elif isinstance(exc, paramiko.BadHostKeyException):
            text = (
                f"{where}: the host key of {peer} does not match known_hosts "
                f"(got {exc.key.get_name()} {exc.key.get_fingerprint().hex()}, "
                f"expected {exc.expected_key.get_fingerprint().hex()}): the server changed "
                "its key, or someone is in the middle"
            )
        elif isinstance(exc, paramiko.AuthenticationException):
            text = f"{where}: authentication of {self.user}@{peer} failed: {exc}"
        elif isinstance(exc, TimeoutError):
            text = f"{where}: timed out connecting to {peer}"
        elif isinstance(exc, paramiko.SSHException | EOFError):
            text = f"{where}: SSH to {peer} failed: {exc or type(exc).__name__}"
        elif isinstance(exc, OSError):
            text = f"{where}: cannot connect to {peer}: {exc.strerror or exc}"
        else:
            raise exc
        raise StoreError(text, store=self.location) from None

    def _take(self) -> paramiko.SFTPClient:
        if not self._slots.acquire(timeout=self.timeout if self.timeout > 0 else None):
            raise StoreError(
                f"store {self.location}: no free SFTP channel before the timeout",
                store=self.location,
            )
        try:
            with self._lock:
                while self._idle:
                    sftp = self._idle.pop()
                    if _usable(sftp):
                        return sftp
                    sftp.close()
                client = self._connect()
                try:
                    sftp = client.open_sftp()
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    client.close()
                    self._client = None
                    raise StoreError(
                        f"store {self.location}: cannot open an SFTP channel: {exc}",
                        store=self.location,
                    ) from None
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.timeout if self.timeout > 0 else None)
            return sftp
        except BaseException:
            self._slots.release()
            raise

    def _give(self, sftp: paramiko.SFTPClient, keep: bool) -> None:
        try:
            with self._lock:
                if keep and not self._closed and _usable(sftp):
                    self._idle.append(sftp)
                    return
            with contextlib.suppress(Exception):
                sftp.close()
        finally:
            self._slots.release()

    def _call(self, func: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``func`` on a channel; once more on a new connection if the old one died."""
        for attempt in range(2):
            sftp = self._take()
            try:
                result = func(sftp)
            except BaseException as exc:
                broken = isinstance(exc, TimeoutError | EOFError | paramiko.SSHException) or (
                    isinstance(exc, OSError) and not _usable(sftp)
                )
                self._give(sftp, keep=not broken)
                if not broken:
                    raise
                if isinstance(exc, TimeoutError) or attempt:
                    raise _Broken(exc) from None
                continue
            self._give(sftp, keep=True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _io_error(self, what: str, exc: BaseException, chunk_id: ChunkId | None = None) -> NoReturn:
        target = f"{what} {chunk_id}" if chunk_id is not None else what
        if isinstance(exc, _Broken):
            cause = exc.cause
            why = (
                "timed out" if isinstance(cause, TimeoutError) else f"the connection broke ({exc})"
            )
        elif isinstance(exc, PermissionError):
            why = f"permission denied: {exc.strerror or exc}"
        elif isinstance(exc, OSError):
            why = exc.strerror or str(exc) or type(exc).__name__
        else:
            why = str(exc)
        raise StoreError(f"store {self.location}: {target}: {why}", store=self.location) from None

    # -- layout ------------------------------------------------------------------------------

    def path(self, chunk_id: ChunkId) -> str:
        """Where the chunk lives on the server."""
        h = chunk_id.hex()
        return f"{self.root}/{h[:4]}/{h}.cacnk"

    def _makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        missing: list[str] = []
        current = path
        while current not in ("", "/", ".") and _stat_or_none(sftp, current) is None:
            missing.append(current)
            current = posixpath.dirname(current)
        for directory in reversed(missing):
            self._mkdir(sftp, directory)

    def _mkdir(self, sftp: paramiko.SFTPClient, directory: str) -> None:
        try:
            sftp.mkdir(directory, 0o755)
        except OSError:
            info = _stat_or_none(sftp, directory)
            if info is None or not stat.S_ISDIR(info.st_mode or 0):
                raise  # not a race with another writer making it

    def _rename(self, sftp: paramiko.SFTPClient, tmp: str, final: str) -> None:
        if self._posix_rename is not False:
            try:
                sftp.posix_rename(tmp, final)
                self._posix_rename = True
                return
            except OSError as exc:
                if self._posix_rename or exc.errno is not None:
                    raise  # a real failure, not a missing extension
                self._posix_rename = False
        try:
            sftp.rename(tmp, final)
        except OSError:
            if _stat_or_none(sftp, final) is None:
                raise
            sftp.remove(tmp)  # another writer put the same chunk first

    # -- the store ---------------------------------------------------------------------------

    def get(self, chunk_id: ChunkId) -> bytes:
        path = self.path(chunk_id)

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as f:
                size = f.stat().st_size or 0
                if size > self.max_size:
                    raise StoreError(
                        f"store {self.location}: chunk {chunk_id} has {size} bytes, over the "
                        f"{self.max_size}-byte limit",
                        store=self.location,
                    )
                f.prefetch(size)
                data = f.read()
            return bytes(data)

        try:
            return self._call(read)
        except FileNotFoundError:
            raise ChunkMissing(
                f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
            ) from None
        except (OSError, _Broken) as exc:
            self._io_error("reading", exc, chunk_id)

    def has(self, chunk_id: ChunkId) -> bool:
        path = self.path(chunk_id)
        try:
            info = self._call(lambda sftp: _stat_or_none(sftp, path))
        except (OSError, _Broken) as exc:
            self._io_error("looking up", exc, chunk_id)
        return info is not None and stat.S_ISREG(info.st_mode or 0)

    def size(self, chunk_id: ChunkId) -> int:
        path = self.path(chunk_id)
        try:
            info = self._call(lambda sftp: _stat_or_none(sftp, path))
        except (OSError, _Broken) as exc:
            self._io_error("looking up", exc, chunk_id)
        if info is None or not stat.S_ISREG(info.st_mode or 0):
            raise ChunkMissing(
                f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
            )
        return int(info.st_size or 0)

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._refuse_write()
        final = self.path(chunk_id)
        directory, name = posixpath.split(final)

        def write(sftp: paramiko.SFTPClient) -> None:
            if _stat_or_none(sftp, final) is not None:
                return
            tmp = f"{directory}/.{name}.{secrets.token_hex(6)}.tmp"
            try:
                f = sftp.open(tmp, "wbx")
            except FileNotFoundError:
                self._mkdir(sftp, directory)
                f = sftp.open(tmp, "wbx")
            try:
                with f:
                    f.set_pipelined(True)
                    f.write(blob)
                self._rename(sftp, tmp, final)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise

        try:
            self._call(write)
        except (OSError, _Broken) as exc:
            self._io_error("writing", exc, chunk_id)

    def remove(self, chunk_id: ChunkId) -> None:
        self._refuse_write()
        path = self.path(chunk_id)

        def unlink(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(path)

        try:
            self._call(unlink)
        except (OSError, _Broken) as exc:
            self._io_error("removing", exc, chunk_id)

    def ids(self) -> Iterator[ChunkId]:
        try:
            tops = self._call(lambda sftp: sftp.listdir_attr(self.root))
        except (OSError, _Broken) as exc:
            self._io_error("listing", exc)
        for top in tops:
            if not (_DIR.fullmatch(top.filename) and stat.S_ISDIR(top.st_mode or 0)):
                continue
            directory = f"{self.root}/{top.filename}"

            def names_in(sftp: paramiko.SFTPClient, directory: str = directory) -> list[str]:
                return sftp.listdir(directory)

            try:
                names = self._call(names_in)
            except FileNotFoundError:
                continue  # removed meanwhile
            except (OSError, _Broken) as exc:
                self._io_error("listing", exc)
            for entry in names:
                m = _NAME.fullmatch(entry)
                if m and m.group(1).startswith(top.filename):
                    yield ChunkId(bytes.fromhex(m.group(1)))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            client, self._client = self._client, None
        for sftp in idle:
            with contextlib.suppress(Exception):
                sftp.close()
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return f"SftpStore({self.location!r})"


def _stat_or_none(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None


def _usable(sftp: paramiko.SFTPClient) -> bool:
    channel = sftp.get_channel()
    if channel is None or channel.closed:
        return False
    transport = channel.get_transport()
    return transport is not None and transport.is_active()
