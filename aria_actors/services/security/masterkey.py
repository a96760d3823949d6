"""Where the embedded secret store's 32-byte master key comes from.

Two sources, one protocol (:class:`MasterKey`, whose ``load()`` blocks: run it in a
thread with ``run_blocking``):

- :class:`FileMasterKey`: the key, hex-encoded, in a file only the node's user can
  read. Created on first use (``O_CREAT | O_EXCL``, mode 0600, 32 bytes from
  :mod:`secrets`), reused afterwards.
- :class:`Pkcs11MasterKey`: the key is generated once in software and kept on disk
  only *wrapped* (encrypted) by an AES-256 key that lives on a PKCS#11 token (an HSM,
  SoftHSM2) and never leaves it: the token key is created non-extractable and
  sensitive. The wrapping is AES key wrap (``CKM_AES_KEY_WRAP``, RFC 3394), which
  SoftHSM2 supports; its integrity check value makes a tampered or foreign wrapped
  file fail to unwrap. At start the token unwraps the file into a temporary session
  object whose value is read once and which is destroyed right away.

Every failure is a :class:`MasterKeyError` (a ``SecretsError``) naming the file or
the token and the cause; a PKCS#11 exception never escapes (it is chained as
``__cause__``)::

    MasterKeyError (SecretsError)
    ├── MasterKeyInsecure     the key file is readable by others or owned by another user
    ├── MasterKeyCorrupt      the key file is malformed / the wrapped key does not unwrap
    │                         (also a StoreCorrupt; the file is never rewritten)
    ├── Pkcs11ModuleError     the PKCS#11 module cannot be loaded
    ├── TokenNotFound         no token (or several) with that label
    └── TokenLoginFailed      wrong, locked or expired PIN (also a SecretsAccessDenied)

A key file that exists is never rewritten or replaced, whatever its state: losing the
master key loses every secret encrypted under it, so deciding is left to an operator.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from .api import SecretsAccessDenied, SecretsError, StoreCorrupt

if TYPE_CHECKING:
    import pkcs11

KEY_SIZE: Final = 32
"""Bytes in a master key (AES-256)."""

WRAP_FORMAT: Final = "aria-master-key/v1/aes-key-wrap"
"""The first field of a wrapped-key file: ``<WRAP_FORMAT> <hex of the RFC 3394 wrap>``."""

_HEX_KEY: Final = re.compile(rb"[0-9a-fA-F]{64}\n?")
_WRAPPED_LINE: Final = re.compile(rb"([!-~]+) ((?:[0-9a-f]{2})+)\n?")
_WRAPPED_SIZE: Final = KEY_SIZE + 8  # RFC 3394 adds one 64-bit block
_MAX_KEY_FILE: Final = 4096


class MasterKeyError(SecretsError):
    """The master key cannot be loaded; the message names the file or token and why."""


class MasterKeyInsecure(MasterKeyError):
    """The key file can be read by other users, is another user's, or is not a file."""


class MasterKeyCorrupt(MasterKeyError, StoreCorrupt):
    """The key file is malformed, or the wrapped key does not unwrap (altered, or
    wrapped by another token key). The file is left untouched."""


class Pkcs11ModuleError(MasterKeyError):
    """The PKCS#11 module (a shared library) is missing or cannot be initialised."""


class TokenNotFound(MasterKeyError):
    """No token with this label (or more than one) in the PKCS#11 module's slots."""


class TokenLoginFailed(MasterKeyError, SecretsAccessDenied):
    """The token refused the PIN (incorrect, locked or expired)."""


@runtime_checkable
class MasterKey(Protocol):
    """A source of the 32-byte master key."""

    def load(self) -> bytes:
        """The master key, created on first use where the source allows it.

        Blocks (file system, token): call it in a thread (``run_blocking``).

        Raises:
            MasterKeyError: the key cannot be obtained; the message says why.
        """
        ...


class FileMasterKey:
    """The master key as 64 hex digits and a newline in a file only its owner can read.

    The file is created on the first ``load()`` if missing (its directory too, mode
    0700) and reused afterwards. Anyone who can read the file can decrypt the store:
    keep it off backups that hold the store, or use :class:`Pkcs11MasterKey`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileMasterKey({str(self.path)!r})"

    def load(self) -> bytes:
        """The key in the file; a new random key written to a new file if there is none.

        Creation uses ``O_CREAT | O_EXCL`` with mode 0600, so two nodes starting at
        once cannot both write a key: the loser reads the winner's file.

        Raises:
            MasterKeyInsecure: the file is group- or world-accessible (``mode & 0o077``),
                belongs to another user, or is not a regular file.
            MasterKeyCorrupt: the file does not hold exactly 64 hex digits (an
                optional final newline aside); it is left as it is.
            MasterKeyError: the file cannot be read or created (an ``OSError``).
        """
        try:
            return _parse_hex_key(self.path, _read_private_file(self.path, "master key file"))
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(KEY_SIZE)
        try:
            _create_private_file(self.path, key.hex().encode("ascii") + b"\n")
        except FileExistsError:
            # Another process created it between our read and our create: use theirs.
            return _parse_hex_key(self.path, _read_private_file(self.path, "master key file"))
        return key


class Pkcs11MasterKey:
    """The master key, wrapped by an AES key that stays on a PKCS#11 token.

    ``module`` is the PKCS#11 shared library (``/usr/lib/softhsm/libsofthsm2.so``),
    ``token_label`` the token, ``pin`` its user PIN, ``key_label`` the wrapping key's
    label on the token and ``wrapped_path`` the file holding the wrapped master key.

    The first ``load()`` (no ``wrapped_path`` yet) finds or creates the wrapping key
    (AES-256, on the token, private, sensitive, non-extractable, usable only to wrap
    and unwrap), generates a random master key, wraps it with ``CKM_AES_KEY_WRAP``
    (RFC 3394) and writes the result to ``wrapped_path`` (``O_EXCL``, mode 0600).
    Every later ``load()`` has the token unwrap that file. The PIN is not shown in
    ``repr``.

    The module is loaded once per process (python-pkcs11 caches it); SoftHSM2 reads
    ``SOFTHSM2_CONF`` at that moment only.
    """

    def __init__(
        self, module: str, token_label: str, pin: str, key_label: str, wrapped_path: Path
    ) -> None:
        self.module = module
        self.token_label = token_label
        self._pin = pin
        self.key_label = key_label
        self.wrapped_path = Path(wrapped_path)

    def __repr__(self) -> str:
        return (
            f"Pkcs11MasterKey(module={self.module!r}, token_label={self.token_label!r}, "
            f"key_label={self.key_label!r}, wrapped_path={str(self.wrapped_path)!r})"
        )

    def load(self) -> bytes:
        """The master key, unwrapped by the token (generated and wrapped on first use).

        Raises:
            Pkcs11ModuleError: ``module`` cannot be loaded or initialised.
            TokenNotFound: no token labelled ``token_label`` (or several).
            TokenLoginFailed: the PIN is wrong, locked or expired.
            MasterKeyInsecure: the wrapped file is readable by others or another user's.
            MasterKeyCorrupt: the wrapped file is malformed or does not unwrap (it was
                altered, or wrapped by another key than the token's ``key_label``).
            MasterKeyError: the wrapped file exists but the token has no key labelled
                ``key_label`` (deleted, or another token), or any other token failure.
        """
        try:
            import pkcs11
        except ImportError as exc:  # pragma: no cover - python-pkcs11 is a dependency
            raise Pkcs11ModuleError(
                "the PKCS#11 master key needs python-pkcs11 (pip install python-pkcs11)"
            ) from exc
        try:
            wrapped: bytes | None = _parse_wrapped(
                self.wrapped_path, _read_private_file(self.wrapped_path, "wrapped master key")
            )
        except FileNotFoundError:
            wrapped = None
        where = f"key {self.key_label!r} on token {self.token_label!r}"
        try:
            with self._session() as session:
                if wrapped is not None:
                    return self._unwrap(session, wrapped, where)
                return self._create(session, where)
        except MasterKeyError:
            raise
        except pkcs11.PKCS11Error as exc:
            raise MasterKeyError(
                f"PKCS#11 failure with {where} ({self.module}): {_describe(exc)}"
            ) from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[pkcs11.Session]:
        """A logged-in read-write session on the token, closed afterwards."""
        import pkcs11 as p11

        try:
            lib = p11.lib(self.module)
        except (p11.PKCS11Error, OSError) as exc:
            raise Pkcs11ModuleError(
                f"cannot load the PKCS#11 module {self.module!r}: {_describe(exc)}"
            ) from exc
        try:
            token = lib.get_token(token_label=self.token_label)
        except p11.NoSuchToken as exc:
            raise TokenNotFound(
                f"no PKCS#11 token labelled {self.token_label!r} in {self.module} "
                "(is it initialised, and is the module's configuration the right one?)"
            ) from exc
        except p11.MultipleTokensReturned as exc:
            raise TokenNotFound(
                f"several PKCS#11 tokens are labelled {self.token_label!r} in {self.module}"
            ) from exc
        try:
            session = token.open(rw=True, user_pin=self._pin)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange) as exc:
            raise TokenLoginFailed(
                f"token {self.token_label!r} refused the PIN ({_describe(exc)})"
            ) from exc
        except (p11.PinLocked, p11.PinExpired) as exc:
            raise TokenLoginFailed(
                f"token {self.token_label!r}: the user PIN is {_describe(exc)}; an operator "
                "must reset it"
            ) from exc
        try:
            yield session
        finally:
            with contextlib.suppress(p11.PKCS11Error):
                session.close()

    def _wrapping_key(self, session: pkcs11.Session) -> pkcs11.Key | None:
        import pkcs11 as p11

        try:
            key = session.get_key(
                object_class=p11.ObjectClass.SECRET_KEY,
                key_type=p11.KeyType.AES,
                label=self.key_label,
            )
        except p11.NoSuchKey:
            return None
        except p11.MultipleObjectsReturned as exc:
            raise MasterKeyError(
                f"several AES keys are labelled {self.key_label!r} on token "
                f"{self.token_label!r}; keep exactly one"
            ) from exc
        return key

    def _unwrap(self, session: pkcs11.Session, wrapped: bytes, where: str) -> bytes:
        import pkcs11 as p11
        from pkcs11 import Attribute

        wrapping = self._wrapping_key(session)
        if wrapping is None:
            raise MasterKeyError(
                f"{self.wrapped_path} holds a wrapped master key but there is no {where}: "
                "the key was deleted or this is another token; the master key cannot be "
                "recovered without it"
            )
        assert isinstance(wrapping, p11.UnwrapMixin)
        try:
            unwrapped = wrapping.unwrap_key(
                p11.ObjectClass.SECRET_KEY,
                p11.KeyType.AES,
                wrapped,
                mechanism=p11.Mechanism.AES_KEY_WRAP,
                store=False,
                template={
                    Attribute.TOKEN: False,
                    Attribute.SENSITIVE: False,
                    Attribute.EXTRACTABLE: True,
                },
            )
        except p11.PKCS11Error as exc:
            raise MasterKeyCorrupt(
                f"{self.wrapped_path} does not unwrap with {where}: the file was altered "
                f"or was wrapped by another key ({_describe(exc)})"
            ) from exc
        try:
            value = bytes(unwrapped[Attribute.VALUE])
        finally:
            with contextlib.suppress(p11.PKCS11Error):
                unwrapped.destroy()
        if len(value) != KEY_SIZE:
            raise MasterKeyCorrupt(
                f"{self.wrapped_path} unwraps to {len(value)} bytes, not {KEY_SIZE}"
            )
        return value

    def _create(self, session: pkcs11.Session, where: str) -> bytes:
        import pkcs11 as p11
        from pkcs11 import Attribute

        wrapping = self._wrapping_key(session)
        if wrapping is None:
            wrapping = session.generate_key(
                p11.KeyType.AES,
                256,
                label=self.key_label,
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.WRAP: True,
                    Attribute.UNWRAP: True,
                    Attribute.ENCRYPT: False,
                    Attribute.DECRYPT: False,
                },
            )
        assert isinstance(wrapping, p11.WrapMixin)
        master = secrets.token_bytes(KEY_SIZE)
        temporary = session.create_object(
            {
                Attribute.CLASS: p11.ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: p11.KeyType.AES,
                Attribute.VALUE: master,
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            }
        )
        try:
            assert isinstance(temporary, p11.Key)
            wrapped = wrapping.wrap_key(temporary, mechanism=p11.Mechanism.AES_KEY_WRAP)
        finally:
            with contextlib.suppress(p11.PKCS11Error):
                temporary.destroy()
        try:
            _create_private_file(
                self.wrapped_path, f"{WRAP_FORMAT} {bytes(wrapped).hex()}\n".encode("ascii")
            )
        except FileExistsError:
            # Another process won the race: its wrapped key is the master key.
            return self._unwrap(
                session,
                _parse_wrapped(
                    self.wrapped_path,
                    _read_private_file(self.wrapped_path, "wrapped master key"),
                ),
                where,
            )
        return master


def _describe(exc: BaseException) -> str:
    """``ClassName: message`` (python-pkcs11 errors often have no message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_private_file(path: Path, what: str) -> bytes:
    """The bytes of ``path`` after checking it is the user's own, private, regular file.

    Raises:
        FileNotFoundError: there is no such file (the caller creates it).
        MasterKeyInsecure: not a regular file, another user's, or ``mode & 0o077``.
        MasterKeyError: any other ``OSError`` (permission denied, I/O error).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MasterKeyInsecure(f"{what} {path} is a symbolic link; refusing it") from exc
        raise MasterKeyError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyInsecure(f"{what} {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise MasterKeyInsecure(
                f"{what} {path} belongs to uid {info.st_uid}, not to this node's user "
                f"(uid {os.geteuid()}); refusing a key another user controls"
            )
        if info.st_mode & 0o077:
            raise MasterKeyInsecure(
                f"{what} {path} is accessible by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` if it was never "
                "exposed, else rotate every secret"
            )
        if info.st_size > _MAX_KEY_FILE:
            raise MasterKeyCorrupt(f"{what} {path} is {info.st_size} bytes: not a key file")
        chunks: list[bytes] = []
        while chunk := os.read(fd, _MAX_KEY_FILE + 1):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise MasterKeyError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _create_private_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a new file at ``path`` (``O_EXCL``, mode 0600), durably.

    The directory is created (mode 0700) if missing. A failed write removes the file.

    Raises:
        FileExistsError: ``path`` already exists (nothing was written).
        MasterKeyError: any other ``OSError``.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise MasterKeyError(f"cannot create {path}: {exc.strerror or exc}") from exc
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_directory(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise MasterKeyError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (ignored where directories cannot be synced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - file systems without directory fsync
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _parse_hex_key(path: Path, content: bytes) -> bytes:
    """The 32 bytes in a key file's ``content``.

    Raises:
        MasterKeyCorrupt: not exactly 64 hex digits and an optional newline.
    """
    if not _HEX_KEY.fullmatch(content):
        detail = "it is empty" if not content else f"it holds {len(content)} bytes"
        raise MasterKeyCorrupt(
            f"master key file {path} must hold exactly 64 hex digits and a newline, but "
            f"{detail} that are not that; it was left untouched (restore it from a backup)"
        )
    return bytes.fromhex(content.decode("ascii").strip())


def _parse_wrapped(path: Path, content: bytes) -> bytes:
    """The RFC 3394 wrap in a wrapped-key file's ``content``.

    Raises:
        MasterKeyCorrupt: not ``<WRAP_FORMAT> <80 hex digits>`` and a newline.
    """
    match = _WRAPPED_LINE.fullmatch(content)
    if match is None:
        raise MasterKeyCorrupt(
            f"wrapped master key file {path} is malformed (expected '{WRAP_FORMAT} <hex>' "
            "and a newline); it was left untouched"
        )
    label, wrapped = match[1].decode("ascii"), bytes.fromhex(match[2].decode("ascii"))
    if label != WRAP_FORMAT:
        raise MasterKeyCorrupt(
            f"wrapped master key file {path} has format {label!r}, not {WRAP_FORMAT!r}"
        )
    if len(wrapped) != _WRAPPED_SIZE:
        raise MasterKeyCorrupt(
            f"wrapped master key file {path} holds {len(wrapped)} bytes, not {_WRAPPED_SIZE}"
        )
    return wrapped
