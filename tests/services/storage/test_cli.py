"""The aria-storage command: desync's commands and flags, exit statuses, clear errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from aria_actors.services.storage.cli import main
from aria_actors.services.storage.index import Index

from .casync import run_casync

pytestmark = pytest.mark.integration


def aria(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    code = info.value.code
    assert isinstance(code, int)
    return code


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    rng = random.Random(1)
    path = tmp_path / "blob.bin"
    path.write_bytes(rng.randbytes(300_000) + bytes(200_000) + rng.randbytes(50_000) * 4)
    return path


def test_make_info_list_extract(
    tmp_path: Path, blob: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert (
        aria("make", "-s", store, "-m", "4:16:64", "--print-stats", tmp_path / "b.caibx", blob) == 0
    )
    stats = json.loads(capsys.readouterr().err)
    assert stats["bytes-in"] == blob.stat().st_size
    assert stats["unique-chunks"] < stats["chunks"]
    index = Index.read(tmp_path / "b.caibx")
    assert (index.min_size, index.avg_size, index.max_size) == (4096, 16384, 65536)

    assert aria("info", "-s", store, tmp_path / "b.caibx") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["chunks"] == len(index)
    assert info["in-store"] == info["unique-chunks"]
    assert info["dedup-ratio"] > 1
    assert info["bytes-in-store"] > 0

    assert aria("list-chunks", tmp_path / "b.caibx") == 0
    listed = capsys.readouterr().out.split()
    assert listed == [str(c.id) for c in index]

    assert aria("extract", "-s", store, tmp_path / "b.caibx", tmp_path / "out") == 0
    assert (tmp_path / "out").read_bytes() == blob.read_bytes()


def test_index_to_stdout_and_from_stdin(tmp_path: Path, blob: Path) -> None:
    exe = [sys.executable, "-m", "aria_actors.services.storage"]
    made = subprocess.run(
        [*exe, "make", "-s", str(tmp_path / "s"), "-", str(blob)], capture_output=True, check=True
    )
    Index.parse(made.stdout)
    subprocess.run(
        [*exe, "extract", "-s", str(tmp_path / "s"), "-", str(tmp_path / "out")],
        input=made.stdout,
        check=True,
    )
    assert (tmp_path / "out").read_bytes() == blob.read_bytes()


def test_casync_store_and_seed_flags(tmp_path: Path, blob: Path, casync: str) -> None:
    run_casync(casync, "make", f"--store={tmp_path / 'cs'}", tmp_path / "c.caibx", blob)
    new = bytearray(blob.read_bytes())
    new[1000:1010] = b"x" * 10
    (tmp_path / "new.bin").write_bytes(new)
    run_casync(
        casync, "make", f"--store={tmp_path / 'cs2'}", tmp_path / "new.caibx", tmp_path / "new.bin"
    )
    # the old version as seed, named desync's way: INDEX:BLOB
    assert (
        aria(
            "extract",
            "-s",
            tmp_path / "cs2",
            f"--seed={tmp_path / 'c.caibx'}:{blob}",
            "--print-stats",
            tmp_path / "new.caibx",
            tmp_path / "out",
        )
        == 0
    )
    assert (tmp_path / "out").read_bytes() == new
    # --seed-dir: every .caibx there, its blob beside it without the extension
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "blob.bin").write_bytes(blob.read_bytes())
    (seeds / "blob.bin.caibx").write_bytes((tmp_path / "c.caibx").read_bytes())
    assert (
        aria(
            "extract",
            "-s",
            tmp_path / "cs2",
            "--seed-dir",
            seeds,
            tmp_path / "new.caibx",
            tmp_path / "o2",
        )
        == 0
    )
    assert (tmp_path / "o2").read_bytes() == new


def test_verify_repair_prune_chop_cache(
    tmp_path: Path, blob: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    aria("make", "-s", store, tmp_path / "b.caibx", blob)
    index = Index.read(tmp_path / "b.caibx")
    assert aria("verify", "-s", store) == 0
    assert aria("verify", "-s", store, tmp_path / "b.caibx") == 0
    # corrupt one chunk: verify fails naming it, --repair removes it
    victim = index[0].id
    path = store / str(victim)[:4] / f"{victim}.cacnk"
    path.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    capsys.readouterr()
    assert aria("verify", "-s", store) == 1
    assert f"corrupt {victim}" in capsys.readouterr().out
    assert aria("verify", "-s", store, "-r") == 0
    assert f"removed {victim}" in capsys.readouterr().out
    assert aria("extract", "-s", store, tmp_path / "b.caibx", tmp_path / "o") == 1
    assert str(victim) in capsys.readouterr().err
    # chop puts it back from the blob itself
    assert aria("chop", "-s", store, tmp_path / "b.caibx", blob) == 0
    assert aria("verify", "-s", store, tmp_path / "b.caibx") == 0
    # cache: copy everything into a second store
    assert aria("cache", "-s", store, "-c", tmp_path / "cache", tmp_path / "b.caibx") == 0
    assert aria("extract", "-s", tmp_path / "cache", tmp_path / "b.caibx", tmp_path / "o") == 0
    # prune needs -y; removes what no index uses
    extra = tmp_path / "other"
    extra.write_bytes(os.urandom(100_000))
    aria("make", "-s", store, tmp_path / "x.caibx", extra)
    assert aria("prune", "-s", store, tmp_path / "b.caibx") == 1
    assert "-y" in capsys.readouterr().err
    assert aria("prune", "-s", store, "-y", tmp_path / "b.caibx") == 0
    assert json.loads(capsys.readouterr().out)["removed"] > 0
    assert aria("verify", "-s", store, tmp_path / "b.caibx") == 0
    assert aria("verify", "-s", store, tmp_path / "x.caibx") == 1


def test_errors_are_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.caibx").write_bytes(b"not an index at all, sorry" * 4)
    assert aria("extract", "-s", tmp_path, tmp_path / "bad.caibx", tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert err.startswith("aria-storage: error: ")
    assert "bad.caibx" in err
    assert aria("info", "-s", tmp_path / "nope", tmp_path / "bad.caibx") == 1
    assert aria("extract", "-s", "gopher://x/y", tmp_path / "bad.caibx", tmp_path / "o") == 1
    assert "gopher" in capsys.readouterr().err
    assert aria("make", "-m", "64:16:4", tmp_path / "i", tmp_path / "bad.caibx") == 2
    assert "64:16:4" in capsys.readouterr().err
    assert aria("extract", tmp_path / "bad.caibx", tmp_path / "o") == 1
    assert not (tmp_path / "o").exists()


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("aria-storage")
    launcher = Path(__file__).resolve().parents[3] / "bin" / "aria-storage"
    for command in ([str(exe)] if exe.exists() else []) + [sys.executable + " " + str(launcher)]:
        done = subprocess.run([*command.split(" "), "--help"], capture_output=True, text=True)
        assert done.returncode == 0
        assert "chunk-server" in done.stdout or "extract" in done.stdout


def test_tar_untar_list(tmp_path: Path, casync: str, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("hello")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    os.symlink("a.txt", tree / "link")
    store = tmp_path / "store"
    assert aria("tar", "-i", "-s", store, tmp_path / "t.caidx", tree) == 0
    run_casync(casync, "make", f"--store={tmp_path / 'cs'}", tmp_path / "c.caidx", tree)
    assert (tmp_path / "t.caidx").read_bytes() == (tmp_path / "c.caidx").read_bytes()
    assert aria("list", "-s", store, tmp_path / "t.caidx") == 0
    listing = capsys.readouterr().out
    assert "sub/b.bin" in listing
    assert "200000" in listing
    assert aria("untar", "-i", "-s", store, tmp_path / "t.caidx", tmp_path / "out") == 0
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == (
        tree / "sub" / "b.bin"
    ).read_bytes()
    assert os.readlink(tmp_path / "out" / "link") == "a.txt"
    # plain .catar, casync's features by name
    assert aria("tar", "--with=unix", tmp_path / "t.catar", tree) == 0
    run_casync(casync, "make", "--with=unix", tmp_path / "c.catar", tree)
    assert (tmp_path / "t.catar").read_bytes() == (tmp_path / "c.catar").read_bytes()
    assert aria("untar", tmp_path / "t.catar", tmp_path / "out2") == 0
    assert (tmp_path / "out2" / "a.txt").read_text() == "hello"
    assert aria("tar", "--with=bogus", tmp_path / "x.catar", tree) == 1
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "x.catar").exists()


def test_token_from_the_environment_reaches_a_chunk_server(
    tmp_path: Path, blob: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    import threading

    from aria_actors.services.storage.stores.local import LocalStore
    from aria_actors.services.storage.stores.server import serve, static_token_authorizer

    aria("make", "-s", tmp_path / "store", tmp_path / "b.caibx", blob)
    loop = asyncio.new_event_loop()
    holder: dict[str, object] = {}

    async def run() -> None:
        server = await serve(
            LocalStore(tmp_path / "store"), authorize=static_token_authorizer("s3cret")
        )
        holder["url"] = server.url
        holder["server"] = server

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)
    try:
        url = str(holder["url"])
        assert aria("extract", "-s", url, tmp_path / "b.caibx", tmp_path / "o1") == 1
        assert "unauthorized" in capsys.readouterr().err
        monkeypatch.setenv("ARIA_STORAGE_TOKEN", "s3cret")
        assert aria("extract", "-s", url, tmp_path / "b.caibx", tmp_path / "o2") == 0
        assert (tmp_path / "o2").read_bytes() == blob.read_bytes()
    finally:
        server = holder["server"]
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
