"""aria_storage's settings: ``[services.aria_storage]`` in the node configuration.

::

    [services.aria_storage]
    default_store = "default"          # where new assets go
    indexes = ""                       # "": <state_dir>/storage/indexes
    min_chunk = 16384                  # chunk sizes of new versions (casync's defaults)
    avg_chunk = 65536
    max_chunk = 262144
    digest = "sha512-256"              # sha512-256 (casync's default) | sha256 | blake3
    compression_level = 3              # zstd level of new chunks (1..22)
    max_jobs = 4                       # adds and fetches running at once; more wait
    workers = 0                        # threads per make/extract; 0: the library's default
    integrity_interval = 3600          # seconds between integrity checks; 0: never
    integrity_sample = 256             # chunks of live versions checked per store each time
    repair = false                     # remove corrupt chunks found (a later add re-stores them)
    gc_interval = 86400                # seconds between garbage collections; 0: never
    gc_grace = 3600                    # an unreferenced chunk is removed only after this long
    keep_last = 0                      # retention: keep the newest N versions of each asset
    keep_days = 0                      #   and/or those younger than D days (0: rule off;
                                       #   both off: keep everything). The newest is never retired.
    archive_with = []                  # what directory versions record (casync's --with names:
                                       #   "best", "unix", "sec-time", "xattrs"...); []: casync's
                                       #   default (best without flag-nodump)
    archive_without = []               #   minus these (casync's --without names)

    [services.aria_storage.stores.default]         # the embedded default
    location = ""                      # "": <state_dir>/storage/stores/<name>

    [services.aria_storage.stores.shared]          # any desync-style location
    location = "s3+https://s3.example.net/chunks/aria"
    writable = true
    cache = "default"                  # read through (and write to) the store named "default"
    credentials = "aria_storage/s3"    # a secret in aria_security; its fields become options
    options = { region = "eu-west-1" } # passed to the store (see stores/chain.py:open_store)
    gc = true                          # false: never prune it (a store other tools write to)

    [services.aria_storage.stores.default.serve]   # serve the store over HTTP (desync's layout)
    listen = "127.0.0.1:8765"          # host:port ([::1]:8765 for IPv6); port 0: any free port
    writable = false                   # accept (verified) PUTs and DELETEs
    auth = true                        # require aria_auth tokens; false: open to anyone,
    allow_open = false                 #   refused off loopback unless allow_open = true
    read_permission = "storage:read"   # what a token needs to GET/HEAD/list
    write_permission = "storage:write" # ... and to PUT/DELETE

Without ``stores`` a node has the one embedded store ``default``. A bad value stops
the start with a :class:`ConfigError` naming the key
(``services.aria_storage.stores.shared.cache: ...``).

A ``serve`` table makes the node run a chunk-server for that store
(:class:`~.server_actor.ChunkServerActor`). Its checks: ``listen`` is ``host:port``;
``auth = false`` on an address that is not loopback needs ``allow_open = true``;
``writable = true`` needs a writable store; two stores cannot share a fixed port
(whatever their hosts).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from ..._runtime.errors import ConfigError
from ..._runtime.tomlfile import describe
from . import flags as ff
from .chunker import ChunkerParams
from .errors import UnsupportedFeature
from .ids import Digest

SERVICE: Final = "aria_storage"
STORE_NAME_LIMIT: Final = 64
STORE_NAME: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{STORE_NAME_LIMIT - 1}}}")
SCHEMES: Final = ("file", "http", "https", "s3+http", "s3+https", "sftp")


_HOST_NAME: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
_PERMISSION: Final = re.compile(r"\S{1,200}")


class ServeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A store's chunk-server (``[services.aria_storage.stores.<name>.serve]``)."""

    listen: str = "127.0.0.1:0"
    writable: bool = False
    auth: bool = True
    allow_open: bool = False
    read_permission: str = "storage:read"
    write_permission: str = "storage:write"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of ``listen`` (checked by :func:`load_settings`)."""
        return parse_listen(self.listen)


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:port"`` for IPv6) as ``(host, port)``; port 0: any.

    Raises:
        ValueError: saying what is wrong.
    """
    host, colon, port_text = listen.rpartition(":")
    if not colon or not host:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:8765), not {listen!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"the port of {listen!r} must be 0..65535 (0: any free port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {listen!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets ([::1]:8765), not {listen!r}")
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{host!r} in {listen!r} is not a host name or address")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only ever reaches this machine (``localhost``, 127/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another name: it may resolve anywhere


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One chunk store (``[services.aria_storage.stores.<name>]``)."""

    location: str = ""
    writable: bool = True
    cache: str = ""
    credentials: str = ""
    options: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)
    gc: bool = True
    serve: ServeSettings | None = None


def _default_stores() -> dict[str, StoreSettings]:
    return {"default": StoreSettings()}


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of ``[services.aria_storage]``; see the module documentation."""

    stores: dict[str, StoreSettings] = msgspec.field(default_factory=_default_stores)
    default_store: str = "default"
    indexes: str = ""
    min_chunk: int = 16 * 1024
    avg_chunk: int = 64 * 1024
    max_chunk: int = 256 * 1024
    digest: Digest = "sha512-256"
    compression_level: int = 3
    max_jobs: int = 4
    workers: int = 0
    integrity_interval: float = 3600.0
    integrity_sample: int = 256
    repair: bool = False
    gc_interval: float = 86400.0
    gc_grace: float = 3600.0
    keep_last: int = 0
    keep_days: float = 0.0
    archive_with: list[str] = msgspec.field(default_factory=list)
    archive_without: list[str] = msgspec.field(default_factory=list)

    @property
    def chunker(self) -> ChunkerParams:
        return ChunkerParams(self.min_chunk, self.avg_chunk, self.max_chunk)

    @property
    def make_workers(self) -> int | None:
        return self.workers or None


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"services.{SERVICE}.{key}: {message}")


def _check(settings: StorageSettings) -> None:
    """The checks msgspec's types cannot say; each error names its key."""
    if not settings.stores:
        raise _fail("stores", "at least one store is needed")
    for name, store in settings.stores.items():
        key = f"stores.{name}"
        if not STORE_NAME.fullmatch(name):
            raise _fail(
                key,
                f"a store name is 1..{STORE_NAME_LIMIT} ASCII letters, digits, '_' or '-' "
                "(starting with a letter or digit)",
            )
        if store.cache:
            if store.cache == name:
                raise _fail(f"{key}.cache", "a store cannot be its own cache")
            if store.cache not in settings.stores:
                raise _fail(
                    f"{key}.cache",
                    f"names no store {store.cache!r} (known: {', '.join(sorted(settings.stores))})",
                )
        if "://" in store.location:
            scheme = store.location.split("://", 1)[0].lower()
            if scheme not in SCHEMES:
                raise _fail(
                    f"{key}.location",
                    f"unknown scheme {scheme!r}; expected a path or one of "
                    + ", ".join(f"{s}://" for s in SCHEMES),
                )
    _check_servers(settings)
    if settings.default_store not in settings.stores:
        raise _fail(
            "default_store",
            f"names no store {settings.default_store!r} "
            f"(known: {', '.join(sorted(settings.stores))})",
        )
    if not settings.stores[settings.default_store].writable:
        raise _fail("default_store", f"store {settings.default_store!r} is not writable")
    try:
        settings.chunker  # noqa: B018 - validates the three sizes together
    except (TypeError, ValueError) as exc:
        raise _fail("min_chunk/avg_chunk/max_chunk", str(exc)) from None
    if not 1 <= settings.compression_level <= 22:
        raise _fail("compression_level", f"zstd levels are 1..22, not {settings.compression_level}")
    if not 1 <= settings.max_jobs <= 256:
        raise _fail("max_jobs", f"must be 1..256, not {settings.max_jobs}")
    if not 0 <= settings.workers <= 256:
        raise _fail("workers", f"must be 0 (default) ..256, not {settings.workers}")
    for key in ("integrity_interval", "gc_interval", "gc_grace", "keep_days"):
        value = getattr(settings, key)
        if not 0 <= value < float("inf"):
            raise _fail(key, f"must be 0 or more seconds (days for keep_days), not {value}")
    if settings.integrity_sample < 1:
        raise _fail("integrity_sample", f"must be at least 1, not {settings.integrity_sample}")
    if settings.keep_last < 0:
        raise _fail("keep_last", f"must be 0 (rule off) or more, not {settings.keep_last}")
    for key in ("archive_with", "archive_without"):
        try:
            ff.parse_with_list(getattr(settings, key))
        except UnsupportedFeature as exc:
            raise _fail(key, str(exc)) from None


def _check_servers(settings: StorageSettings) -> None:
    ports: dict[int, str] = {}
    for name, store in settings.stores.items():
        serve = store.serve
        if serve is None:
            continue
        key = f"stores.{name}.serve"
        try:
            host, port = serve.address
        except ValueError as exc:
            raise _fail(f"{key}.listen", str(exc)) from None
        if port:
            other = ports.setdefault(port, name)
            if other != name:
                raise _fail(
                    f"{key}.listen",
                    f"port {port} is also stores.{other}.serve's; give each store its own "
                    "port (or 0: any free port)",
                )
        if not serve.auth and not serve.allow_open and not is_loopback(host):
            raise _fail(
                f"{key}.auth",
                f"false on {host}, which is not a loopback address, serves the store to "
                "anyone who can reach it: keep auth = true, listen on 127.0.0.1, "
                "or set allow_open = true to mean it",
            )
        if serve.writable and not store.writable:
            raise _fail(
                f"{key}.writable",
                f"store {name!r} is read-only (stores.{name}.writable = false); "
                "its server cannot accept uploads",
            )
        for field in ("read_permission", "write_permission"):
            value = getattr(serve, field)
            if not _PERMISSION.fullmatch(value):
                raise _fail(
                    f"{key}.{field}",
                    f"a permission is 1..200 characters without spaces, not {value!r}",
                )


def load_settings(raw: Mapping[str, Any]) -> StorageSettings:
    """Decode and check ``[services.aria_storage]``.

    Raises:
        ConfigError: naming the key (``services.aria_storage.gc_grace: ...``).
    """
    raw = dict(raw)
    stores = raw.get("stores")
    if isinstance(stores, dict):  # each one decoded alone, so errors name it
        checked: dict[str, StoreSettings] = {}
        for name, table in stores.items():
            try:
                checked[str(name)] = msgspec.convert(table, StoreSettings)
            except msgspec.ValidationError as exc:
                described = describe(exc).removeprefix("(top level)")
                joiner = "" if described.startswith(":") else "."
                raise ConfigError(f"services.{SERVICE}.stores.{name}{joiner}{described}") from exc
        raw["stores"] = checked
    try:
        settings = msgspec.convert(raw, StorageSettings, from_attributes=True)
    except msgspec.ValidationError as exc:
        described = describe(exc).removeprefix("(top level)")
        raise ConfigError(
            f"services.{SERVICE}{'' if described.startswith(':') else '.'}{described}"
        ) from exc
    _check(settings)
    return settings


def archive_flags(
    settings: StorageSettings, with_: Sequence[str] = (), without: Sequence[str] = ()
) -> int:
    """The feature flags of a new directory version: what its archive records.

    ``with_``/``without`` are casync's ``--with``/``--without`` names; given either,
    they replace the settings' ``archive_with``/``archive_without``. No ``with`` names
    start from casync's default (:data:`.flags.DEFAULT`: ``best`` without
    ``flag-nodump``), as ``casync make`` does; ``.caexclude`` files are obeyed and
    nodump files left out (casync's defaults); the digest bits follow ``digest``.

    Raises:
        UnsupportedFeature: an unknown name.
    """
    if not with_ and not without:
        with_, without = settings.archive_with, settings.archive_without
    selected = list(with_) if with_ else ff.format_with(ff.DEFAULT)
    return ff.make_flags(with_=selected, without=without, digest=settings.digest)


def storage_dir(state_dir: Path) -> Path:
    """Where the embedded defaults live: ``<state_dir>/storage``."""
    return state_dir / "storage"


def indexes_dir(settings: StorageSettings, state_dir: Path | None) -> Path:
    """Where the catalogue keeps its index files.

    Raises:
        ConfigError: ``indexes`` is empty and the node has no state directory.
    """
    if settings.indexes:
        return Path(settings.indexes).expanduser()
    if state_dir is None:
        raise _fail("indexes", "empty (the default) needs the node's state directory; set it")
    return storage_dir(state_dir) / "indexes"


def store_location(settings: StorageSettings, name: str, state_dir: Path | None) -> str:
    """Store ``name``'s location, the embedded default filled in.

    Raises:
        ConfigError: its location is empty and the node has no state directory.
    """
    location = settings.stores[name].location
    if location:
        return location
    if state_dir is None:
        raise _fail(
            f"stores.{name}.location",
            "empty (the default) needs the node's state directory; set it",
        )
    return str(storage_dir(state_dir) / "stores" / name)
