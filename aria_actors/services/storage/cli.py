"""``aria-storage``: the command line of aria_storage.

Commands and flags follow desync's where they overlap (``-s`` store, ``-c`` cache,
``-m`` min:avg:max in KiB, ``-n`` concurrency, ``--seed INDEX[:BLOB]``, ``-k`` in
place, ``--digest``); ``untar -i`` takes casync's ``--seed DIR`` (repeatable) and
``--seed-output=no``. Stores are given as locations: a directory, ``http(s)://``,
``s3+http(s)://``, ``sftp://``.

An HTTP store behind aria_auth (a node's chunk server) gets the token in
``ARIA_STORAGE_TOKEN`` (an environment variable, so it never shows in ``ps``). The
``chunk-server`` command admits only requests bearing that same token when it is set.

Exit status: 0 on success, 1 when the operation failed (the message on stderr names
the file, chunk or store), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .chunker import ChunkerParams
from .errors import StorageError
from .extract import Seed, extract
from .index import Index
from .info import info, list_chunks
from .maintenance import prune, verify_index, verify_store
from .make import make
from .stores.base import Store
from .transfer import cache, chop

_UNITS = {"": 1024, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20}


def parse_chunk_size(text: str) -> ChunkerParams:
    """``min:avg:max`` in KiB (desync's ``-m``), each with an optional B/K/M suffix; a
    single number is the average, with min = avg/4 and max = avg*4 as casync does."""
    parts = text.split(":")
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(f"chunk size {text!r}: expected min:avg:max or avg")
    sizes = []
    for part in parts:
        digits = part.rstrip("bBkKmM")
        unit = part[len(digits) :].lower()
        if not digits.isdigit() or unit not in _UNITS:
            raise argparse.ArgumentTypeError(f"chunk size {text!r}: {part!r} is not a size")
        sizes.append(int(digits) * _UNITS[unit])
    if len(sizes) == 1:
        sizes = [sizes[0] // 4, sizes[0], sizes[0] * 4]
    try:
        return ChunkerParams(sizes[0], sizes[1], sizes[2])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"chunk size {text!r}: {exc}") from None


def parse_bool(text: str) -> bool:
    """casync's booleans: yes/no, true/false, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("yes", "y", "true", "t", "on", "1"):
        return True
    if value in ("no", "n", "false", "f", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (yes or no)")


def _open(location: str, *, writable: bool = True) -> Store:
    from .stores.chain import open_store

    options: dict[str, object] = {"writable": writable}
    token = os.environ.get("ARIA_STORAGE_TOKEN")
    if token and location.split("://", 1)[0].lower() in ("http", "https"):
        options["token"] = token  # an aria_auth token for a node's chunk server
    return open_store(location, **options)


def _stores(locations: Sequence[str], *, writable: bool = False) -> list[Store]:
    if not locations:
        raise StorageError("no store given (-s/--store)")
    return [_open(loc, writable=writable) for loc in locations]


@contextlib.contextmanager
def _closing(*stores: Store | None) -> Iterator[None]:
    """Close every store given (``None`` skipped) when the block ends."""
    try:
        yield
    finally:
        for store in stores:
            if store is not None:
                store.close()


def _report(stats: object) -> None:
    """A dataclass of counts as one JSON line on stderr."""
    print(json.dumps(vars(stats)), file=sys.stderr)


def _read_index(path: str) -> Index:
    if path == "-":
        return Index.parse(sys.stdin.buffer.read(), name="<stdin>")
    return Index.read(path)


def _write_index(index: Index, path: str) -> None:
    if path == "-":
        sys.stdout.buffer.write(index.to_bytes())
        sys.stdout.buffer.flush()
    else:
        index.write(path)


def cmd_make(args: argparse.Namespace) -> int:
    store = _open(args.store) if args.store else None
    with _closing(store):
        index, stats = make(
            args.file,
            store,
            params=args.chunk_size,
            digest=args.digest,
            level=args.level,
            workers=args.concurrency,
        )
    _write_index(index, args.index)
    if args.print_stats:
        print(
            json.dumps(
                {
                    "chunks": stats.chunks,
                    "unique-chunks": stats.unique_chunks,
                    "new-chunks": stats.new_chunks,
                    "bytes-in": stats.bytes_in,
                    "bytes-stored": stats.bytes_stored,
                    "dedup-ratio": round(stats.dedup_ratio, 4),
                }
            ),
            file=sys.stderr,
        )
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    stores = _stores(args.store)
    if args.cache:
        from .stores.chain import CacheStore, ChainStore

        stores = [CacheStore(_open(args.cache), ChainStore(stores))]
    seeds: list[Seed] = [Seed.parse(s) for s in args.seed]
    for directory in args.seed_dir:
        for idx in sorted(Path(directory).glob("*.caibx")):
            seeds.append(Seed(idx.with_suffix(""), idx))
    with _closing(*stores):
        stats = extract(
            _read_index(args.index),
            args.file,
            stores,
            seeds=seeds,
            in_place=args.in_place,
            workers=args.concurrency,
        )
    if args.print_stats:
        _report(stats)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = _open(args.store, writable=args.repair)
    with _closing(store):
        if args.index:
            reports = [
                verify_index(_read_index(i), store, workers=args.concurrency) for i in args.index
            ]
        else:
            reports = [
                verify_store(
                    store, digest=args.digest, repair=args.repair, workers=args.concurrency
                )
            ]
    ok = True
    for report in reports:
        for cid in report.missing:
            print(f"missing {cid}")
        for cid, why in report.corrupt:
            print(f"corrupt {cid}: {why}")
        for cid in report.removed:
            print(f"removed {cid}")
        ok = ok and report.ok
    return 0 if ok or args.repair else 1


def cmd_prune(args: argparse.Namespace) -> int:
    if not args.yes and not args.dry_run:
        raise StorageError("prune deletes chunks; confirm with -y/--yes (or --dry-run)")
    store = _open(args.store)
    with _closing(store):
        report = prune(store, [_read_index(i) for i in args.index], dry_run=args.dry_run)
    print(json.dumps({"kept": report.kept, "removed": report.removed}))
    return 0


def cmd_chop(args: argparse.Namespace) -> int:
    store = _open(args.store)
    with _closing(store):
        report = chop(_read_index(args.index), args.file, store, workers=args.concurrency)
    _report(report)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    remotes = _stores(args.store)
    target = _open(args.cache)
    with _closing(target, *remotes):
        report = cache(
            [_read_index(i) for i in args.index], remotes, target, workers=args.concurrency
        )
    _report(report)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    store = _open(args.store, writable=False) if args.store else None
    with _closing(store):
        result = info(_read_index(args.index), store, workers=args.concurrency)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def cmd_list_chunks(args: argparse.Namespace) -> int:
    out = sys.stdout
    for cid in list_chunks(_read_index(args.index)):
        out.write(f"{cid}\n")
    return 0


def _flags(args: argparse.Namespace) -> int:
    from . import flags as ff

    try:
        return ff.make_flags(with_=args.with_, without=args.without, digest=args.digest)
    except ValueError as exc:
        raise StorageError(f"feature flags: {exc}") from None


def cmd_tar(args: argparse.Namespace) -> int:
    from .archive import make_archive, tar

    if not args.index:
        tar(args.source, args.archive, feature_flags=_flags(args))
        return 0
    store = _open(args.store) if args.store else None
    with _closing(store):
        index, _ = make_archive(
            args.source,
            store,
            feature_flags=_flags(args),
            params=args.chunk_size,
            digest=args.digest,
            workers=args.concurrency,
        )
    _write_index(index, args.archive)
    return 0


def cmd_untar(args: argparse.Namespace) -> int:
    from .archive import UntarStats, untar

    restore_owner = False if args.no_same_owner else None
    stats = UntarStats()
    if not args.index:
        if args.seed:
            raise StorageError("--seed needs -i: seeds provide the chunks of a .caidx")
        untar(args.archive, args.target, restore_owner=restore_owner)
    else:
        stores = _stores(args.store)
        with _closing(*stores):
            untar(
                _read_index(args.archive),
                args.target,
                stores,
                seeds=args.seed,
                seed_output=args.seed_output,
                stats=stats,
                restore_owner=restore_owner,
                workers=args.concurrency,
            )
    if args.print_stats:
        _report(stats)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """The entries of an archive, one per line: mode, owner, size, path (like casync list)."""
    import stat

    from . import catar
    from .archive import chunk_stream

    source: catar.Source
    opened = None
    if args.archive.endswith(".caidx") or args.archive == "-":
        stores = _stores(args.store)
        source = chunk_stream(_read_index(args.archive), stores, workers=args.concurrency)
    else:
        try:
            opened = open(args.archive, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise StorageError(f"cannot read {args.archive}: {exc.strerror or exc}") from None
        source = opened
    try:
        for entry in catar.read_entries(source):
            owner = f"{entry.user or entry.uid}:{entry.group or entry.gid}"
            print(f"{stat.filemode(entry.mode)} {owner:>15} {entry.size:>12} {entry.path}")
    finally:
        if opened is not None:
            opened.close()
    return 0


def cmd_chunk_server(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .stores.server import serve, static_token_authorizer

    host, _, port = args.listen.rpartition(":")
    store = _open(args.store, writable=args.writable)
    token = os.environ.get("ARIA_STORAGE_TOKEN")
    authorize = static_token_authorizer(token) if token else None

    async def run() -> None:
        server = await serve(
            store,
            host or "127.0.0.1",
            int(port or 0),
            writable=args.writable,
            digest=args.digest,
            authorize=authorize,
        )
        print(f"serving {store} on {server.url}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    with _closing(store):
        asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aria-storage",
        description="casync/desync-compatible content-addressed storage",
    )
    parser.add_argument(
        "--digest", default="sha512-256", choices=["sha512-256", "sha256", "blake3"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--concurrency", type=int, default=None, help="worker threads")

    p = sub.add_parser("make", help="chunk a file into a store and write its index")
    p.add_argument("-s", "--store", help="target store (no store: only the index)")
    p.add_argument(
        "-m",
        "--chunk-size",
        type=parse_chunk_size,
        default=ChunkerParams(),
        help="min:avg:max in KiB (default 16:64:256)",
    )
    p.add_argument("--level", type=int, default=3, help="zstd level of new chunks")
    p.add_argument("--print-stats", action="store_true")
    p.add_argument("index", help="the index to write (- for stdout)")
    p.add_argument("file")
    common(p)
    p.set_defaults(run=cmd_make)

    p = sub.add_parser("extract", help="build a file from its index and stores")
    p.add_argument("-s", "--store", action="append", default=[], help="source store (repeatable)")
    p.add_argument("-c", "--cache", help="a local store in front of the sources")
    p.add_argument("--seed", action="append", default=[], metavar="INDEX[:BLOB]")
    p.add_argument("--seed-dir", action="append", default=[], metavar="DIR")
    p.add_argument(
        "-k",
        "--in-place",
        action="store_true",
        help="use the existing target as a seed (it is replaced only when complete)",
    )
    p.add_argument("--print-stats", action="store_true")
    p.add_argument("index", help="the index (- for stdin)")
    p.add_argument("file")
    common(p)
    p.set_defaults(run=cmd_extract)

    p = sub.add_parser("verify", help="check chunks against their ids")
    p.add_argument("-s", "--store", required=True)
    p.add_argument("-r", "--repair", action="store_true", help="remove corrupt chunks")
    p.add_argument("index", nargs="*", help="only the chunks of these indexes")
    common(p)
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("prune", help="remove chunks no listed index uses")
    p.add_argument("-s", "--store", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("index", nargs="+")
    p.set_defaults(run=cmd_prune)

    p = sub.add_parser("chop", help="store the chunks of an index read from its file")
    p.add_argument("-s", "--store", required=True)
    p.add_argument("index")
    p.add_argument("file")
    common(p)
    p.set_defaults(run=cmd_chop)

    p = sub.add_parser("cache", help="copy the chunks of indexes into a cache store")
    p.add_argument("-s", "--store", action="append", default=[], help="source store (repeatable)")
    p.add_argument("-c", "--cache", required=True)
    p.add_argument("index", nargs="+")
    common(p)
    p.set_defaults(run=cmd_cache)

    p = sub.add_parser("info", help="chunk counts, dedup ratio, bytes in a store (JSON)")
    p.add_argument("-s", "--store")
    p.add_argument("index")
    common(p)
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("list-chunks", help="the chunk ids of an index, in order")
    p.add_argument("index")
    p.set_defaults(run=cmd_list_chunks)

    def archive_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--with",
            dest="with_",
            action="append",
            default=[],
            metavar="FEATURE",
            help="casync's archive features (best, unix, user-names, xattrs, ...)",
        )
        p.add_argument("--without", action="append", default=[], metavar="FEATURE")

    p = sub.add_parser("tar", help="a directory to a .catar, or with -i to a store and a .caidx")
    p.add_argument("-i", "--index", action="store_true", help="chunk into a store, write a .caidx")
    p.add_argument("-s", "--store", help="target store (with -i)")
    p.add_argument("-m", "--chunk-size", type=parse_chunk_size, default=ChunkerParams())
    archive_flags(p)
    p.add_argument("archive", help="the .catar (or .caidx with -i; - for stdout)")
    p.add_argument("source", help="the directory")
    common(p)
    p.set_defaults(run=cmd_tar)

    p = sub.add_parser("untar", help="a .catar, or with -i a .caidx and stores, to a directory")
    p.add_argument("-i", "--index", action="store_true")
    p.add_argument("-s", "--store", action="append", default=[], help="source store (repeatable)")
    p.add_argument("--no-same-owner", action="store_true", help="do not restore ownership")
    p.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory (or .catar) that may share chunks with the archive, read before "
        "the stores (repeatable; with -i)",
    )
    p.add_argument(
        "--seed-output",
        type=parse_bool,
        default=True,
        metavar="BOOL",
        help="use an existing target directory as a seed too (default yes, as casync)",
    )
    p.add_argument("--print-stats", action="store_true")
    p.add_argument("archive")
    p.add_argument("target", help="replaced only once the whole archive has been read")
    common(p)
    p.set_defaults(run=cmd_untar)

    p = sub.add_parser("list", help="the entries of a .catar or .caidx")
    p.add_argument("-s", "--store", action="append", default=[], help="stores (for a .caidx)")
    p.add_argument("archive")
    common(p)
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("chunk-server", help="serve a store over HTTP (desync's layout)")
    p.add_argument("-s", "--store", required=True)
    p.add_argument("-l", "--listen", default="127.0.0.1:8080", help="HOST:PORT")
    p.add_argument("-w", "--writable", action="store_true", help="accept PUT (verified)")
    p.set_defaults(run=cmd_chunk_server)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except StorageError as exc:
        print(f"aria-storage: error: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)
