"""The catalogue's SQL (tables in ``sql/``; ``$n`` placeholders, the same on SQLite
and PostgreSQL) and the rows it reads turned into :class:`~.replies.VersionInfo`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from ..data.api import Connection, Row, affected
from .catalogue_errors import UnknownAsset
from .index_files import row_kind
from .replies import VersionInfo

_VERSION_COLUMNS: Final = "v.*, a.store AS asset_store"


def version_info(row: Row, store: str) -> VersionInfo:
    """A ``storage_versions`` row as a :class:`VersionInfo` of an asset in ``store``."""
    retired_at = row["retired_at"]
    return VersionInfo(
        asset=str(row["asset"]),
        number=int(row["number"]),
        store=store,
        kind=row_kind(row),
        size=int(row["size"]),
        chunks=int(row["chunks"]),
        unique_chunks=int(row["unique_chunks"]),
        new_chunks=int(row["new_chunks"]),
        new_bytes=int(row["new_bytes"]),
        digest=str(row["digest"]),
        index_digest=str(row["index_digest"]),
        index_path=str(row["index_path"]),
        created_at=float(row["created_at"]),
        retired=bool(row["retired"]),
        retired_at=float(retired_at) if retired_at is not None else None,
        metadata=msgspec.json.decode(str(row["metadata"] or "{}")),
    )


def version_row(row: Row) -> VersionInfo:
    """A row of :meth:`CatalogueRows.versions` (joined with its asset's store)."""
    return version_info(row, str(row["asset_store"]))


class CatalogueRows:
    """The catalogue's SQL over one connection or transaction (``$n`` placeholders,
    the same on SQLite and PostgreSQL)."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    async def asset(self, name: str) -> Row | None:
        return await self.db.fetchrow("SELECT * FROM storage_assets WHERE name = $1", name)

    async def assets(self) -> list[Row]:
        return await self.db.fetch("SELECT * FROM storage_assets ORDER BY name")

    async def asset_kind(self, name: str) -> str | None:
        """The kind of the asset's versions (the newest's), ``None`` without any."""
        row = await self.db.fetchrow(
            "SELECT kind FROM storage_versions WHERE asset = $1 ORDER BY number DESC LIMIT 1",
            name,
        )
        return str(row["kind"]) if row is not None else None

    async def versions(self, asset: str | None = None, live_only: bool = False) -> list[Row]:
        where, args = [], []
        if asset is not None:
            args.append(asset)
            where.append(f"v.asset = ${len(args)}")
        if live_only:
            where.append("v.retired = 0")
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return await self.db.fetch(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            f"JOIN storage_assets a ON a.name = v.asset {clause}ORDER BY v.asset, v.number",
            *args,
        )

    async def version(self, asset: str, number: int) -> Row | None:
        return await self.db.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            "JOIN storage_assets a ON a.name = v.asset WHERE v.asset = $1 AND v.number = $2",
            asset,
            number,
        )

    async def latest(self, asset: str) -> Row | None:
        return await self.db.fetchrow(
            f"SELECT {_VERSION_COLUMNS} FROM storage_versions v "
            "JOIN storage_assets a ON a.name = v.asset "
            "WHERE v.asset = $1 AND v.retired = 0 ORDER BY v.number DESC LIMIT 1",
            asset,
        )

    async def live_in_store(self, store: str) -> list[Row]:
        return await self.db.fetch(
            "SELECT v.asset, v.number, v.kind, v.index_digest, v.size, v.chunks "
            "FROM storage_versions v JOIN storage_assets a ON a.name = v.asset "
            "WHERE a.store = $1 AND v.retired = 0 ORDER BY v.asset, v.number",
            store,
        )

    async def index_digests(self) -> tuple[set[str], set[str]]:
        """(digests live versions use, digests any version row names)."""
        rows = await self.db.fetch(
            "SELECT index_digest, MIN(retired) AS retired FROM storage_versions "
            "GROUP BY index_digest"
        )
        known = {str(r["index_digest"]) for r in rows}
        return {str(r["index_digest"]) for r in rows if not int(r["retired"])}, known

    async def create_asset(self, name: str, store: str, now: float) -> None:
        await self.db.execute(
            "INSERT INTO storage_assets (name, store, next_version, created_at, updated_at) "
            "VALUES ($1, $2, 1, $3, $3) ON CONFLICT (name) DO NOTHING",
            name,
            store,
            now,
        )

    async def take_number(self, name: str, now: float) -> tuple[int, str]:
        """The asset's next version number (taken) and its store; the row stays
        locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
        await self.db.execute(
            "UPDATE storage_assets SET next_version = next_version + 1, updated_at = $2 "
            "WHERE name = $1",
            name,
            now,
        )
        row = await self.db.fetchrow(
            "SELECT next_version, store FROM storage_assets WHERE name = $1", name
        )
        if row is None:
            raise UnknownAsset(f"no asset {name!r}")
        return int(row["next_version"]) - 1, str(row["store"])

    async def insert_version(self, values: Mapping[str, Any]) -> None:
        columns = list(values)
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self.db.execute(
            f"INSERT INTO storage_versions ({', '.join(columns)}) VALUES ({placeholders})",
            *values.values(),
        )

    async def retire(self, asset: str, number: int, now: float) -> bool:
        status = await self.db.execute(
            "UPDATE storage_versions SET retired = 1, retired_at = $3 "
            "WHERE asset = $1 AND number = $2 AND retired = 0",
            asset,
            number,
            now,
        )
        return bool(affected(status))

    async def delete_asset(self, name: str) -> int:
        status = await self.db.execute("DELETE FROM storage_versions WHERE asset = $1", name)
        deleted = affected(status)
        await self.db.execute("DELETE FROM storage_assets WHERE name = $1", name)
        return deleted

    async def candidates(self, store: str) -> dict[str, float]:
        rows = await self.db.fetch(
            "SELECT chunk_id, first_seen FROM storage_gc_candidates WHERE store = $1", store
        )
        return {str(r["chunk_id"]): float(r["first_seen"]) for r in rows}

    async def add_candidates(self, store: str, chunk_ids: Iterable[str], now: float) -> None:
        rows = [(store, chunk_id, now) for chunk_id in chunk_ids]
        if rows:
            await self.db.executemany(
                "INSERT INTO storage_gc_candidates (store, chunk_id, first_seen) "
                "VALUES ($1, $2, $3) ON CONFLICT (store, chunk_id) DO NOTHING",
                rows,
            )

    async def drop_candidates(self, store: str, chunk_ids: Iterable[str]) -> None:
        rows = [(store, chunk_id) for chunk_id in chunk_ids]
        if rows:
            await self.db.executemany(
                "DELETE FROM storage_gc_candidates WHERE store = $1 AND chunk_id = $2", rows
            )
