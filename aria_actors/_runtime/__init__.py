"""The runtime core: actors, mailboxes, links, monitors, supervisors, nodes.

Nothing in here imports from the services; the public names are re-exported by
``aria_actors``.
"""
