"""Fixtures of the aria_storage tests: ``casync`` (the reference binary), and for the
service tests a node's ``state`` directory, a ``files`` directory to add from, and a
node running aria_storage (``node``, ``storage``) on SQLite and on PostgreSQL
(``data_settings``) with the test's ``settings`` (parametrize it to change them)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Node
from aria_actors.services.storage.client import Storage
from tests.servers.fixtures import PgDatabase

from .casync import casync
from .service_support import postgres_data, storage_node, storage_settings

__all__ = ["casync", "data_settings", "files", "node", "settings", "state", "storage"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


@pytest.fixture(params=["sqlite", "postgres"])
def data_settings(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """aria_data's settings: its default SQLite, or the test's PostgreSQL database."""
    if request.param == "sqlite":
        return None
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return postgres_data(pg)


@pytest.fixture
def settings() -> dict[str, Any]:
    """``[services.aria_storage]``; tests override it with their own fixture value."""
    return storage_settings()


@pytest.fixture
async def node(
    state: Path, settings: dict[str, Any], data_settings: dict[str, Any] | None
) -> AsyncIterator[Node]:
    async with storage_node(state, settings, data_settings) as running:
        yield running


@pytest.fixture
def storage(node: Node) -> Storage:
    return Storage(node)
