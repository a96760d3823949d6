"""Ambient state: which actor's code is running (set only where it is needed).

A traced actor's context carries its process here, so that a message it sends can
be attributed to it (``Node.trace``). Nothing else reads it; there is no module
state besides this one variable.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .process import Process

CURRENT_PROCESS: ContextVar[Process | None] = ContextVar("aria_current_process", default=None)
