"""``aria_actors.__all__`` is the public API: honest, sorted, and holding the runtime contract."""

from __future__ import annotations

import importlib.metadata
import inspect
import types

import pytest

import aria_actors

CONTRACT = [
    "Actor",
    "handles",
    "Node",
    "ActorRef",
    "MonitorRef",
    "ChildSpec",
    "SupervisorSpec",
    "DynamicSupervisorSpec",
    "ServiceSpec",
    "load_services",
    "Exit",
    "Down",
    "ExitReason",
    "AriaError",
    "NoProcess",
    "CallTimeout",
    "ActorExited",
    "UnhandledMessage",
    "MailboxFull",
    "StartError",
    "BootError",
]

ERRORS = [
    "AriaError",
    "NoProcess",
    "CallTimeout",
    "ActorExited",
    "UnhandledMessage",
    "MailboxFull",
    "StartError",
    "BootError",
    "SupervisorError",
    "ConfigError",
]


def isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions; each group in plain string order."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_every_exported_name_exists() -> None:
    for name in aria_actors.__all__:
        assert hasattr(aria_actors, name), name


def test_no_name_is_exported_twice() -> None:
    assert len(set(aria_actors.__all__)) == len(aria_actors.__all__)


def test_all_is_sorted_constants_classes_functions() -> None:
    assert aria_actors.__all__ == sorted(aria_actors.__all__, key=isort_key)


def defined_in_aria(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "aria_actors" or module.startswith("aria_actors.")


def test_every_public_class_and_function_is_exported() -> None:
    missing = [
        name
        for name, value in vars(aria_actors).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and defined_in_aria(value)
        and name not in aria_actors.__all__
    ]
    assert missing == []


def test_nothing_else_public_sits_in_the_module() -> None:
    """Apart from submodules and ``from __future__ import annotations``, everything is exported."""
    extra = {
        name
        for name, value in vars(aria_actors).items()
        if not name.startswith("_")
        and name not in aria_actors.__all__
        and not isinstance(value, types.ModuleType)
    }
    assert extra <= {"annotations"}


def test_exported_objects_come_from_aria_actors() -> None:
    for name in aria_actors.__all__:
        value = getattr(aria_actors, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert defined_in_aria(value), name


@pytest.mark.parametrize("name", CONTRACT)
def test_the_runtime_contract_is_exported(name: str) -> None:
    assert name in aria_actors.__all__
    assert getattr(aria_actors, name) is not None


def test_call_timeout_is_a_timeout_error() -> None:
    assert issubclass(aria_actors.CallTimeout, TimeoutError)
    assert issubclass(aria_actors.CallTimeout, aria_actors.AriaError)


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_an_aria_error(name: str) -> None:
    error = getattr(aria_actors, name)
    assert issubclass(error, aria_actors.AriaError)
    assert issubclass(error, Exception)


def test_every_exported_exception_is_in_the_tree() -> None:
    exceptions = [
        name
        for name in aria_actors.__all__
        if inspect.isclass(getattr(aria_actors, name))
        and issubclass(getattr(aria_actors, name), BaseException)
    ]
    assert sorted(exceptions) == sorted(ERRORS)


def test_the_version_is_the_installed_distribution_version() -> None:
    assert aria_actors.__version__ == importlib.metadata.version("aria-actors")
