"""Characters in aria_data: the ``engine_characters`` table (migrations in ``sql/``).

One row per character, written through by its actor (:mod:`.character_actor`): the
world state, the to-do list of its current or last run, and how that run went (phase,
commands executed, replans, error, trace id, the number of runs so far). A character's
actor reads its row when it (re)starts, so the state survives a crash of the actor
and a restart of the node; the director restarts every stored character when the
service starts.

``state``, ``todo`` and ``executed`` are msgpack of the wire data of :mod:`.wire`
(msgpack keeps int keys, floats and bools exactly, which JSON would not). Spans are
not stored: they live in the actor's memory only.

Every actor instance *claims* its row when it starts (:meth:`CharacterStore.claim`:
a fresh ``owner`` token, then it reads the row) and writes only while it is the owner
(:meth:`CharacterStore.save`): a stale writer — the run of an actor that was killed,
still finishing its command, or a second node running the same character — is
refused instead of overwriting newer data.

Decoding a row checks everything a character needs (the columns' types, the state
and to-do list as :mod:`.wire` would accept them, the phase); anything wrong raises
:class:`~.errors.CorruptCharacter` naming the character and the column. Nothing here
ever changes or deletes a row it could not decode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, get_args

import msgspec

from ..data.api import Connection, Row, affected
from .errors import CorruptCharacter, EngineError
from .messages import CharacterPhase
from .wire import BadRequest, Goals, state_from_data, todo_from_data

__all__ = [
    "MIGRATIONS",
    "TABLE",
    "CharacterStore",
    "StoredCharacter",
    "decode_row",
    "encode_data",
]

MIGRATIONS: Final = Path(__file__).resolve().parent / "sql"
TABLE: Final = "engine_characters"
PHASES: Final[tuple[str, ...]] = get_args(CharacterPhase)


@dataclass(frozen=True, slots=True)
class StoredCharacter:
    """One character as stored.

    ``state`` is wire data (``{variable: value}``), ``todo`` wire items (lists and
    :class:`~.wire.Goals`), ``executed`` action tuples. Invariant: ``runs`` counts the
    runs ever accepted, so ``trace`` (``character.<id>.<runs>``) never repeats.
    """

    character: str
    domain: str
    state: dict[str, Any]
    todo: list[Any]
    phase: CharacterPhase
    executed: list[tuple[Any, ...]]
    replans: int
    error: str | None
    trace: str | None
    runs: int
    created_at: float
    updated_at: float

    def evolve(self, **changes: Any) -> StoredCharacter:
        """A copy with ``changes``."""
        return replace(self, **changes)


def encode_data(value: Any) -> bytes:
    """``value`` (wire data, tuples, :class:`~.wire.Goals`) as msgpack.

    Raises:
        BadRequest: ``value`` holds something that is not data.
    """
    try:
        return msgspec.msgpack.encode(value)
    except TypeError as exc:
        raise BadRequest(f"not storable data: {exc}") from exc


def _blob(row: Row, column: str) -> bytes:
    value = row.get(column)
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise ValueError(f"{column}: expected bytes (msgpack), found {type(value).__name__}")
    return value


def _decoded(row: Row, column: str) -> Any:
    try:
        return msgspec.msgpack.decode(_blob(row, column))
    except msgspec.DecodeError as exc:
        raise ValueError(f"{column}: undecodable msgpack ({exc})") from None


def _todo(items: Any) -> list[Any]:
    if not isinstance(items, list):
        raise ValueError(f"todo: a list of items, not a {type(items).__name__}")
    out: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            try:
                out.append(msgspec.convert(item, Goals))
            except msgspec.ValidationError as exc:
                raise ValueError(f"todo: item {i} is no multigoal ({exc})") from None
        else:
            out.append(item)
    try:
        todo_from_data(out)
    except BadRequest as exc:
        raise ValueError(f"todo: {exc}") from None
    return out


def _executed(items: Any) -> list[tuple[Any, ...]]:
    if not isinstance(items, list) or not all(
        isinstance(a, list) and a and isinstance(a[0], str) for a in items
    ):
        raise ValueError("executed: a list of actions [name, *args] expected")
    return [tuple(a) for a in items]


def _text(row: Row, column: str, optional: bool = False) -> Any:
    value = row.get(column)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{column}: expected text, found {type(value).__name__}")
    return value


def _number(row: Row, column: str, kind: type[int] | type[float]) -> Any:
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{column}: expected a number, found {type(value).__name__}")
    if kind is int and value != int(value):
        raise ValueError(f"{column}: expected an integer, found {value!r}")
    return kind(value)


def decode_row(row: Row) -> StoredCharacter:
    """The :class:`StoredCharacter` of an ``engine_characters`` row.

    Raises:
        CorruptCharacter: a column is missing, of the wrong type or undecodable, or
            the state or to-do list is not what :mod:`.wire` accepts (the message
            names the character and the column).
    """
    character = str(row.get("id", "?"))
    try:
        phase = _text(row, "phase")
        if phase not in PHASES:
            raise ValueError(f"phase: {phase!r} is none of {', '.join(PHASES)}")
        state = _decoded(row, "state")
        try:
            state_from_data(state, character)
        except BadRequest as exc:
            raise ValueError(f"state: {exc}") from None
        replans = _number(row, "replans", int)
        runs = _number(row, "runs", int)
        if replans < 0 or runs < 0:
            raise ValueError("replans and runs must be 0 or more")
        return StoredCharacter(
            character=character,
            domain=_text(row, "domain"),
            state=state,
            todo=_todo(_decoded(row, "todo")),
            phase=phase,
            executed=_executed(_decoded(row, "executed")),
            replans=replans,
            error=_text(row, "error", optional=True),
            trace=_text(row, "trace", optional=True),
            runs=runs,
            created_at=_number(row, "created_at", float),
            updated_at=_number(row, "updated_at", float),
        )
    except ValueError as exc:
        raise CorruptCharacter(character, str(exc)) from None


def _columns(record: StoredCharacter) -> list[Any]:
    """The row's values in the order of ``_COLUMNS``."""
    return [
        record.character,
        record.domain,
        encode_data(record.state),
        encode_data(record.todo),
        record.phase,
        encode_data(record.executed),
        record.replans,
        record.error,
        record.trace,
        record.runs,
        record.created_at,
        record.updated_at,
    ]


_COLUMNS: Final = (
    "id, domain, state, todo, phase, executed, replans, error, trace, runs, created_at, updated_at"
)


class CharacterStore:
    """The SQL of ``engine_characters`` over one connection, transaction or database
    (``$n`` placeholders, the same on SQLite and PostgreSQL).

    Database failures propagate as aria_data's ``DatabaseError``s.
    """

    def __init__(self, db: Connection) -> None:
        self.db = db

    async def ids(self) -> list[str]:
        """Every stored character's id, sorted (rows need not decode)."""
        rows = await self.db.fetch(f"SELECT id FROM {TABLE} ORDER BY id")
        return [str(row["id"]) for row in rows]

    async def row(self, character: str) -> Row | None:
        """The raw row of ``character`` (``None``: not stored)."""
        return await self.db.fetchrow(f"SELECT * FROM {TABLE} WHERE id = $1", character)

    async def load(self, character: str) -> StoredCharacter | None:
        """``character`` as stored, or ``None`` when it is not.

        Raises:
            CorruptCharacter: its row cannot be decoded (see :func:`decode_row`).
        """
        row = await self.row(character)
        return decode_row(row) if row is not None else None

    async def claim(self, character: str, owner: str) -> bool:
        """Make ``owner`` the only writer of ``character``'s row (only that column is
        written); ``False`` when there is no such row."""
        status = await self.db.execute(
            f"UPDATE {TABLE} SET owner = $2 WHERE id = $1", character, owner
        )
        return bool(affected(status))

    async def create(self, record: StoredCharacter) -> bool:
        """Insert ``record``; ``False`` (and nothing written) when the id is taken.

        Raises:
            BadRequest: its data cannot be stored.
        """
        values = _columns(record)
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        status = await self.db.execute(
            f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (id) DO NOTHING",
            *values,
        )
        return bool(affected(status))

    async def save(self, record: StoredCharacter, owner: str) -> None:
        """Write every column of ``record`` over its row (``created_at`` stays), if
        ``owner`` still owns it.

        Raises:
            EngineError: the row is gone, or another actor claimed it since (a newer
                instance of the character's actor, or another node): nothing written.
            BadRequest: its data cannot be stored.
        """
        values = _columns(record)
        del values[-2]  # created_at
        status = await self.db.execute(
            f"UPDATE {TABLE} SET domain = $2, state = $3, todo = $4, phase = $5, "
            "executed = $6, replans = $7, error = $8, trace = $9, runs = $10, "
            "updated_at = $11 WHERE id = $1 AND owner = $12",
            *values,
            owner,
        )
        if not affected(status):
            raise EngineError(
                f"character {record.character!r}: not saved, its row was deleted or claimed "
                f"by another actor (a restarted one, or another node) since {owner!r} "
                "claimed it"
            )

    async def delete(self, character: str) -> bool:
        """Delete ``character``'s row; whether there was one."""
        status = await self.db.execute(f"DELETE FROM {TABLE} WHERE id = $1", character)
        return bool(affected(status))
