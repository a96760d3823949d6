"""aria_storage's package exports: every name resolves to what it names, never a module."""

from __future__ import annotations

import importlib
import types

import aria_actors.services.storage as storage


def test_every_exported_name_resolves() -> None:
    for name in storage.__all__:
        value = getattr(storage, name)
        assert not isinstance(value, types.ModuleType), name
        assert value.__module__.startswith("aria_actors.services.storage"), name


def test_function_named_like_its_module_survives_the_module_import() -> None:
    for name in ("make", "extract", "info"):
        importlib.import_module(f"aria_actors.services.storage.{name}")
        assert callable(getattr(storage, name))
        assert not isinstance(getattr(storage, name), types.ModuleType)
    assert sorted(storage.__all__) == storage.__all__
    assert set(storage.__all__) <= set(dir(storage))
