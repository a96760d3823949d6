"""Specifications are validated when built, with the field named."""

from __future__ import annotations

from typing import Any

import pytest

from aria_actors import (
    DEFAULTS,
    ChildSpec,
    DynamicSupervisorSpec,
    ServiceSpec,
    SupervisorSpec,
)

from .actors import Counter


def test_defaults_follow_otp() -> None:
    assert DEFAULTS.strategy == "one_for_one"
    assert (DEFAULTS.max_restarts, DEFAULTS.max_seconds) == (3, 5.0)
    assert DEFAULTS.restart == "permanent"
    worker = ChildSpec(id="w", start=Counter)
    sup = ChildSpec(id="s", start=SupervisorSpec())
    assert worker.effective_shutdown == 5.0
    assert sup.effective_shutdown == "infinity"
    assert not worker.is_supervisor
    assert sup.is_supervisor


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": ""}, "id must be"),
        ({"start": int}, "start must be"),
        ({"restart": "always"}, "restart must be one of"),
        ({"shutdown": -1}, "shutdown must be"),
        ({"shutdown": "never"}, "shutdown must be"),
        ({"shutdown": True}, "shutdown must be"),
        ({"mailbox_size": 0}, "mailbox_size"),
        ({"name": ""}, "name must be"),
        ({"args": [1]}, "args must be a mapping"),
    ],
)
def test_child_spec_errors(kwargs: dict[str, Any], match: str) -> None:
    fields: dict[str, Any] = {"id": "w", "start": Counter, **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        ChildSpec(**fields)


def test_supervisor_child_takes_no_args() -> None:
    with pytest.raises(ValueError, match="args are for workers"):
        ChildSpec(id="s", start=SupervisorSpec(), args={"x": 1})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "all_for_one"}, "strategy must be"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"max_restarts": 1.5}, "max_restarts"),
        ({"max_seconds": 0}, "max_seconds"),
        (
            {"children": [ChildSpec(id="a", start=Counter), ChildSpec(id="a", start=Counter)]},
            "duplicate child id 'a'",
        ),
        ({"children": ["a"]}, "must be ChildSpec"),
    ],
)
def test_supervisor_spec_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        SupervisorSpec(**kwargs)


def test_dynamic_and_service_spec_errors() -> None:
    with pytest.raises(ValueError, match="max_children"):
        DynamicSupervisorSpec(max_children=-1)
    with pytest.raises(ValueError, match="name must be"):
        ServiceSpec(name="", supervisor=SupervisorSpec())
    with pytest.raises(TypeError, match="SupervisorSpec"):
        ServiceSpec(name="s", supervisor=DynamicSupervisorSpec())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="requires"):
        ServiceSpec(name="s", supervisor=SupervisorSpec(), requires=[""])
    with pytest.raises(ValueError, match="restart must be"):
        ServiceSpec(name="s", supervisor=SupervisorSpec(), restart="sometimes")  # type: ignore[arg-type]


def test_specs_are_frozen_and_children_become_a_tuple() -> None:
    spec = SupervisorSpec(children=[ChildSpec(id="a", start=Counter)])
    assert isinstance(spec.children, tuple)
    service = ServiceSpec(name="s", supervisor=spec, requires=["x"])
    assert service.requires == ("x",)
    with pytest.raises(AttributeError):
        spec.strategy = "one_for_all"  # type: ignore[misc]
