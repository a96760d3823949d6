"""The domains aria_engine ships: ``blocks``, ``logistics`` and ``character``.

Each module defines its actions, commands (``c_<action>``), methods and action costs,
a ``domain()`` factory, ``DOMAINS`` (the module's domains, which is what the domain
registry looks for in any module it loads) and problem generators.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SHIPPED"]

SHIPPED: Final = (
    "aria_actors.services.engine.domains.blocks",
    "aria_actors.services.engine.domains.logistics",
    "aria_actors.services.engine.domains.character",
)
"""The modules of the shipped domains, loaded by every node running aria_engine."""
