"""The control socket: the node side (``server``) and ``aria-console`` (``main``, ``repl``).

The protocol is in ``protocol``; ``ConsoleClient`` is a small client for scripts.
"""

from __future__ import annotations

from .client import ConsoleClient as ConsoleClient
from .client import ConsoleError as ConsoleError
from .client import locate as locate

__all__ = ["ConsoleClient", "ConsoleError", "locate"]
