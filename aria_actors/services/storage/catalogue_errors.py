"""The catalogue's errors: bad requests, answered to the caller (the service keeps
running)::

    StorageError
    └── CatalogueError
        ├── InvalidName       an asset name the catalogue refuses (also a ValueError)
        ├── UnknownAsset      no asset of that name
        ├── UnknownVersion    the asset has no version of that number
        ├── VersionRetired    the version was retired: it cannot be read
        ├── AssetConflict     the request contradicts the asset (another store, another
        │                     kind, retiring its newest version)
        └── UnknownStore      no store of that name is configured
"""

from __future__ import annotations

from .errors import StorageError


class CatalogueError(StorageError):
    """Base of the catalogue's errors (bad requests: the service keeps running)."""


class InvalidName(CatalogueError, ValueError):
    """An asset name the catalogue refuses (the message says why)."""


class UnknownAsset(CatalogueError):
    """No asset of that name."""


class UnknownVersion(CatalogueError):
    """The asset has no version of that number."""


class VersionRetired(CatalogueError):
    """The version was retired: its chunks may be gone, it cannot be read."""


class AssetConflict(CatalogueError):
    """The request contradicts the asset (another store, a directory added to an asset
    of files or the reverse, retiring its newest version)."""


class UnknownStore(CatalogueError):
    """No store of that name is configured (``[services.aria_storage.stores.<name>]``)."""
