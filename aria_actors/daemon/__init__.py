"""``aria-node``: one Aria node in the foreground, under a service manager or a terminal."""

from __future__ import annotations

from .main import main as main

__all__ = ["main"]
