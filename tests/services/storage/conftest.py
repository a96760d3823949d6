"""Fixtures of the aria_storage tests (``casync``: the reference binary)."""

from .casync import casync

__all__ = ["casync"]
