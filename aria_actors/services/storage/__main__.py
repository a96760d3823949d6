"""``python -m aria_actors.services.storage`` runs ``aria-storage``."""

from .cli import main

main()
