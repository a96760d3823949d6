"""aria_storage benchmark: make and extract against casync, in the same run.

Run it with ``make bench-storage`` (``.venv/bin/python benchmarks/bench_storage.py``).

The input is a 256 MiB file (``--size``) mixing, in 1 MiB stretches picked by a seeded
generator, random bytes, repeated 64 KiB blocks, text and zeros. A second version of
it (a few hundred small edits and one insertion) is the "new" blob of the seeded case.
Four operations, each by casync (Debian's ``casync`` 2, single-threaded) and by Aria
(the library in this process, default workers = one per core, and the ``aria-storage``
command, which adds interpreter start-up):

- **make, empty store**: chunk, hash, compress, write every chunk;
- **make, full store**: the same file into the store that already holds its chunks;
- **extract, no seed**: the blob from its index and the store, into a new file;
- **extract, seed**: the new version, with the old one as seed.

Both write zstd level 3 chunks with the default sizes 16K/64K/256K and SHA512/256 ids;
the run checks that both indexes are byte-identical (same boundaries, same ids) and
that every extracted file equals its source. Each figure is the best of ``--repeats``
runs (page cache warm, the stores on the same file system). Results go to
``benchmarks/results/storage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from aria_actors.services.storage.extract import extract  # noqa: E402
from aria_actors.services.storage.make import make  # noqa: E402
from aria_actors.services.storage.stores.local import LocalStore  # noqa: E402

MiB = 1 << 20


def mixed_data(size: int, seed: int = 7) -> bytearray:
    """``size`` bytes of random, repeated, text and zero stretches (deterministic)."""
    rng = random.Random(seed)
    words = [
        bytes(rng.choice(b"etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 9)))
        for _ in range(4000)
    ]
    block = rng.randbytes(64 * 1024)
    out = bytearray()
    while len(out) < size:
        kind = rng.randrange(4)
        if kind == 0:
            out += rng.randbytes(MiB)
        elif kind == 1:
            out += block * 16
        elif kind == 2:
            text = bytearray()
            while len(text) < MiB:
                text += b" ".join(rng.choices(words, k=12)) + b".\n"
            out += text[:MiB]
        else:
            out += bytes(MiB)
    del out[size:]
    return out


def edited(data: bytearray, seed: int = 11) -> bytearray:
    """A new version: 300 small edits and one 100 KiB insertion."""
    rng = random.Random(seed)
    new = bytearray(data)
    for _ in range(300):
        at = rng.randrange(len(new) - 4096)
        new[at : at + rng.randint(1, 4096)] = rng.randbytes(rng.randint(1, 4096))
    at = rng.randrange(len(new))
    new[at:at] = rng.randbytes(100 * 1024)
    return new


def best(repeats: int, prepare: Callable[[], None], run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        prepare()
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def sh(*args: str | Path) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, args))} failed: {done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="MiB (default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    parser.add_argument("--json", default=str(HERE / "results" / "storage.json"))
    args = parser.parse_args()
    casync = shutil.which("casync")
    if casync is None:
        raise SystemExit("casync is not installed (apt-get install casync)")
    aria_cli = [sys.executable, "-m", "aria_actors.services.storage"]
    work = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir))
    try:
        size = args.size * MiB
        old = work / "old.bin"
        new = work / "new.bin"
        data = mixed_data(size)
        old.write_bytes(data)
        new.write_bytes(edited(data))
        del data
        mb = size / 1e6
        rows: list[dict[str, Any]] = []

        def fresh(path: Path) -> Callable[[], None]:
            def go() -> None:
                shutil.rmtree(path, ignore_errors=True)

            return go

        def nothing() -> None:
            pass

        # -- make, empty store
        cs, ast = work / "casync-store", work / "aria-store"
        t_c = best(
            args.repeats,
            fresh(cs),
            lambda: sh(casync, "make", f"--store={cs}", work / "c-old.caibx", old),
        )

        def aria_make(target: Path, index: Path, src: Path) -> Callable[[], None]:
            def go() -> None:
                idx, _ = make(src, LocalStore(target))
                idx.write(index)

            return go

        t_a = best(args.repeats, fresh(ast), aria_make(ast, work / "a-old.caibx", old))
        t_cli = best(
            args.repeats,
            fresh(ast),
            lambda: sh(*aria_cli, "make", "-s", ast, work / "a-old.caibx", old),
        )
        rows.append({"op": "make, empty store", "casync": t_c, "aria": t_a, "aria_cli": t_cli})
        same = (work / "c-old.caibx").read_bytes() == (work / "a-old.caibx").read_bytes()

        # -- make, full store (both stores hold the chunks now)
        t_c = best(
            args.repeats,
            nothing,
            lambda: sh(casync, "make", f"--store={cs}", work / "c-old.caibx", old),
        )
        t_a = best(args.repeats, nothing, aria_make(ast, work / "a-old.caibx", old))
        t_cli = best(
            args.repeats,
            nothing,
            lambda: sh(*aria_cli, "make", "-s", ast, work / "a-old.caibx", old),
        )
        rows.append({"op": "make, full store", "casync": t_c, "aria": t_a, "aria_cli": t_cli})

        # the new version's chunks go in too, for the seeded extract
        sh(casync, "make", f"--store={cs}", work / "c-new.caibx", new)
        idx_new, _ = make(new, LocalStore(ast))
        idx_new.write(work / "a-new.caibx")
        same = same and (work / "c-new.caibx").read_bytes() == (work / "a-new.caibx").read_bytes()

        out = work / "out.bin"

        def rm_out() -> None:
            out.unlink(missing_ok=True)

        # -- extract, no seed
        t_c = best(
            args.repeats,
            rm_out,
            lambda: sh(casync, "extract", f"--store={cs}", work / "c-old.caibx", out),
        )
        ok_c = out.read_bytes() == old.read_bytes()
        t_a = best(
            args.repeats,
            rm_out,
            lambda: extract(work / "a-old.caibx", out, LocalStore(ast)) and None,
        )
        ok_a = out.read_bytes() == old.read_bytes()
        t_cli = best(
            args.repeats,
            rm_out,
            lambda: sh(*aria_cli, "extract", "-s", ast, work / "a-old.caibx", out),
        )
        rows.append({"op": "extract, no seed", "casync": t_c, "aria": t_a, "aria_cli": t_cli})

        # -- extract, seed = the old version
        t_c = best(
            args.repeats,
            rm_out,
            lambda: sh(
                casync, "extract", f"--store={cs}", f"--seed={old}", work / "c-new.caibx", out
            ),
        )
        ok_c = ok_c and out.read_bytes() == new.read_bytes()
        t_a = best(
            args.repeats,
            rm_out,
            lambda: extract(work / "a-new.caibx", out, LocalStore(ast), seeds=[old]) and None,
        )
        ok_a = ok_a and out.read_bytes() == new.read_bytes()
        t_cli = best(
            args.repeats,
            rm_out,
            lambda: sh(
                *aria_cli,
                "extract",
                "-s",
                ast,
                f"--seed={work / 'a-old.caibx'}:{old}",
                work / "a-new.caibx",
                out,
            ),
        )
        rows.append({"op": "extract, seed", "casync": t_c, "aria": t_a, "aria_cli": t_cli})

        print(
            f"\naria_storage vs casync: {args.size} MiB mixed file, best of {args.repeats}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        print(
            f"{'operation':<20} {'casync MB/s':>12} {'aria MB/s':>10} {'ratio':>6} "
            f"{'cli MB/s':>9} {'ratio':>6}"
        )
        for r in rows:
            r["casync_mbps"] = mb / r["casync"]
            r["aria_mbps"] = mb / r["aria"]
            r["aria_cli_mbps"] = mb / r["aria_cli"]
            r["ratio"] = r["casync"] / r["aria"]
            r["cli_ratio"] = r["casync"] / r["aria_cli"]
            print(
                f"{r['op']:<20} {r['casync_mbps']:>12.0f} {r['aria_mbps']:>10.0f} "
                f"{r['ratio']:>5.2f}x "
                f"{r['aria_cli_mbps']:>9.0f} {r['cli_ratio']:>5.2f}x"
            )
        print(
            f"indexes byte-identical to casync's: {same}; "
            f"extracted files correct: casync {ok_c}, aria {ok_a}"
        )
        result = {
            "size_mib": args.size,
            "repeats": args.repeats,
            "rows": rows,
            "identical_indexes": same,
            "correct": {"casync": ok_c, "aria": ok_a},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
