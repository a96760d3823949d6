"""Aria's services, each a supervised actor tree: a functional core and its actors."""
