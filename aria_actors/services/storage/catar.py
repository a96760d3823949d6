"""catar: casync's directory archive format, written byte for byte as casync writes it.

The public surface of the format; the work is done in

* :mod:`.catar_encode` — :func:`encode`: a tree to a stream of ``bytes`` blocks (feed it
  to a chunker to make a ``.caidx``);
* :mod:`.catar_decode` — :func:`walk` / :func:`read_entries`: a strict streaming parser
  and lister; :func:`extract`: the tree back on disk;
* :mod:`.catar_format` — object types, layouts, limits and the goodbye table;
* :mod:`.catar_exclude` — ``.caexclude`` rules; :mod:`.catar_sys` — ioctls and ACLs;
* :mod:`.flags` — the feature flags; :mod:`.siphash` — the goodbye table's hash.

Example::

    with open("tree.catar", "wb") as out:
        for block in encode("/srv/tree", flags.make_flags(without=["xattrs"])):
            out.write(block)
    for entry in read_entries(open("tree.catar", "rb")):
        print(entry.path, oct(entry.mode), entry.size)
    extract(open("tree.catar", "rb"), "/tmp/copy")
"""

from __future__ import annotations

from .catar_decode import (
    AclEntry,
    CatarAcl,
    CatarEntry,
    DirectoryEnd,
    Event,
    Source,
    extract,
    read_entries,
    walk,
)
from .catar_encode import BLOCK_SIZE, encode

__all__ = [
    "BLOCK_SIZE",
    "AclEntry",
    "CatarAcl",
    "CatarEntry",
    "DirectoryEnd",
    "Event",
    "Source",
    "encode",
    "extract",
    "read_entries",
    "walk",
]
