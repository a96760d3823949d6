"""aria_storage: casync/desync-compatible content-addressed storage.

Files are cut into chunks by casync's rolling hash, chunks are stored once by their id in
a chunk store, and an index (``.caibx`` for a blob, ``.caidx`` for a directory archive)
lists them. The formats are byte-compatible with casync 2.
"""

from __future__ import annotations
