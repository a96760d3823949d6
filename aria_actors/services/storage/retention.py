"""Retention: retiring versions, by the policy (``keep_last`` newest and/or younger
than ``keep_days``; the newest is never retired) or explicitly.

A retired version stays listed but can no longer be read: its chunks are free for
the garbage collector (:mod:`.collector`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from ..data.api import Database
from .catalogue_errors import AssetConflict, UnknownVersion
from .rows import CatalogueRows

DAY: Final = 86400.0


class RetiredVersion(msgspec.Struct, frozen=True):
    asset: str
    number: int
    reason: Literal["policy", "explicit"]


def retention_victims(
    versions: Sequence[tuple[int, float]], keep_last: int, keep_days: float, now: float
) -> list[int]:
    """The live versions (``(number, created_at)``) the policy retires, oldest first.

    A version is kept when it is among the ``keep_last`` newest or younger than
    ``keep_days`` days (a rule set to 0 is off; both off keeps everything). The newest
    version is always kept.
    """
    if not versions or (keep_last <= 0 and keep_days <= 0):
        return []
    ordered = sorted(versions, key=lambda v: v[0], reverse=True)
    victims = []
    for position, (number, created_at) in enumerate(ordered):
        if position == 0:
            continue
        recent = keep_days > 0 and created_at > now - keep_days * DAY
        among_last = keep_last > 0 and position < keep_last
        if not (recent or among_last):
            victims.append(number)
    return sorted(victims)


async def retire(
    db: Database, asset: str, numbers: Sequence[int], now: float
) -> list[RetiredVersion]:
    """Retire versions of ``asset`` explicitly (never its newest live one).

    Raises:
        UnknownVersion, AssetConflict (the newest).
    """
    rows = CatalogueRows(db)
    live = await rows.versions(asset, live_only=True)
    newest = max((int(r["number"]) for r in live), default=0)
    wanted = sorted(set(numbers))
    for number in wanted:
        if await rows.version(asset, number) is None:
            raise UnknownVersion(f"asset {asset!r} has no version {number}")
        if number == newest:
            raise AssetConflict(
                f"version {number} is the newest of asset {asset!r} and cannot be "
                "retired (delete the asset to drop it all)"
            )
    done = []
    async with db.transaction() as tx:
        in_tx = CatalogueRows(tx)
        for number in wanted:
            if await in_tx.retire(asset, number, now):
                done.append(RetiredVersion(asset, number, "explicit"))
    return done


async def apply_policy(
    db: Database, keep_last: int, keep_days: float, now: float, asset: str | None = None
) -> list[RetiredVersion]:
    """Retire what the policy says, for one asset or all."""
    by_asset: dict[str, list[tuple[int, float]]] = {}
    for row in await CatalogueRows(db).versions(asset, live_only=True):
        by_asset.setdefault(str(row["asset"]), []).append(
            (int(row["number"]), float(row["created_at"]))
        )
    done = []
    for name, versions in sorted(by_asset.items()):
        victims = retention_victims(versions, keep_last, keep_days, now)
        if not victims:
            continue
        async with db.transaction() as tx:
            rows = CatalogueRows(tx)
            for number in victims:
                if await rows.retire(name, number, now):
                    done.append(RetiredVersion(name, number, "policy"))
    return done
