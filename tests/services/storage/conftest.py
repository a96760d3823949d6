"""Fixtures of the aria_storage tests: ``casync`` (the reference binary), and for the
service tests a node's ``state`` directory and a ``files`` directory to add from."""

from pathlib import Path

import pytest

from .casync import casync

__all__ = ["casync", "files", "state"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    directory = tmp_path / "files"
    directory.mkdir()
    return directory
