"""The domain registry's functional core: which domains a node plans in, by name.

Domains come from *sources*: the shipped modules (:data:`.domains.SHIPPED`), the
modules of ``[services.aria_engine] modules`` and the GTPyhop modules of
``gtpyhop_modules``. A source is named, never built at run time, so a worker process
loads exactly the same domains from the same list (see :mod:`.pool`).

A Python module provides domains by its ``DOMAINS`` (an iterable of
:class:`~.domain.Domain`), or else by every module-level ``Domain`` it defines. A
GTPyhop module provides the domain it created (:func:`~.compat.load_gtpyhop_module`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..._runtime.errors import ConfigError
from .compat import load_gtpyhop_module
from .domain import Domain
from .domains import SHIPPED
from .settings import EngineSettings

__all__ = ["DomainSource", "load_domains", "sources_from"]


@dataclass(frozen=True)
class DomainSource:
    """Where domains come from: a Python module's import path, or a GTPyhop module."""

    kind: Literal["module", "gtpyhop"]
    target: str


def sources_from(settings: EngineSettings) -> list[DomainSource]:
    """The shipped domains' modules, then the configured ones, in order."""
    return [
        *(DomainSource("module", m) for m in SHIPPED),
        *(DomainSource("module", m) for m in settings.modules),
        *(DomainSource("gtpyhop", m) for m in settings.gtpyhop_modules),
    ]


def _module_domains(path: str) -> list[Domain]:
    module = importlib.import_module(path)
    declared = getattr(module, "DOMAINS", None)
    found: Iterable[object] = declared if declared is not None else vars(module).values()
    domains = [d for d in found if isinstance(d, Domain)]
    if declared is not None and len(domains) != len(list(declared)):
        raise ConfigError(f"{path}.DOMAINS holds something that is not a Domain")
    return domains


def load_domains(sources: Iterable[DomainSource]) -> dict[str, Domain]:
    """``{name: domain}`` for every domain of ``sources``.

    Raises:
        ConfigError: a source cannot be imported, provides no domain, or provides a
            domain whose name another source already gave.
    """
    domains: dict[str, Domain] = {}
    for source in sources:
        try:
            if source.kind == "module":
                found = _module_domains(source.target)
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    found = [load_gtpyhop_module(source.target).domain]
        except ConfigError:
            raise
        except Exception as exc:
            key = "modules" if source.kind == "module" else "gtpyhop_modules"
            raise ConfigError(
                f"services.aria_engine.{key}: cannot load {source.target!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not found:
            raise ConfigError(f"services.aria_engine: {source.target!r} defines no Domain")
        for domain in found:
            if domain.name in domains:
                raise ConfigError(
                    f"services.aria_engine: domain {domain.name!r} of {source.target!r} is "
                    "already defined by another module (domain names must be unique)"
                )
            domains[domain.name] = domain
    return domains
