"""The C chunker against the plain-Python oracle (reference_chunker.py) and casync itself.

casync's tests need the ``casync`` binary (Debian's casync 2): without it they are
skipped, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import array
import io
import itertools
import mmap
import random
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aria_actors.services.storage import _chunker
from aria_actors.services.storage.chunker import (
    CHUNK_SIZE_LIMIT_MAX,
    DEFAULT_AVG,
    DEFAULT_MAX,
    DEFAULT_MIN,
    WINDOW_SIZE,
    Chunker,
    ChunkerParams,
    boundaries,
    iter_chunks,
)

from . import reference_chunker as ref

MiB = 1024 * 1024

# casync-valid (min, avg, max) settings, small enough for the Python oracle. (16, 32, 40)
# has max below the window: casync's chunker then cuts at 48 bytes (see the casync test).
SETTINGS = [
    (1, 1, 1),
    (7, 7, 7),
    (64, 64, 64),
    (1, 2, 48),
    (1, 4, 64),
    (16, 32, 40),
    (47, 64, 100),
    (48, 64, 100),
    (49, 64, 100),
    (64, 256, 1024),
    (100, 300, 2000),
    (200, 1000, 4000),
    (1, 1000, 100_000),
    (1000, 1000, 1001),
]


def c_ends(data: bytes, sizes: tuple[int, int, int], pieces: list[int] | None = None) -> list[int]:
    """Chunk ends from the raw C Chunker, feeding ``data`` cut at ``pieces`` offsets."""
    chunker = _chunker.Chunker(*sizes)
    cuts = sorted({0, len(data), *(pieces or [])})
    ends: list[int] = []
    for start, stop in itertools.pairwise(cuts):
        ends += [start + end for end in chunker.feed(data[start:stop])]
    assert chunker.position == len(data)
    if chunker.pending:
        assert chunker.pending == len(data) - (ends[-1] if ends else 0)
        ends.append(len(data))
    return ends


def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def mixed(seed: int, n: int) -> bytes:
    """Text-like runs, random runs, zero runs and repeats of an earlier block."""
    rnd = random.Random(seed)
    out = bytearray()
    block = rnd.randbytes(rnd.randrange(100, 5000))
    while len(out) < n:
        kind = rnd.randrange(4)
        size = rnd.randrange(1, 40_000)
        if kind == 0:
            out += bytes(rnd.choice(b"abcdefgh \n") for _ in range(min(size, 5000)))
        elif kind == 1:
            out += rnd.randbytes(size)
        elif kind == 2:
            out += bytes(size)
        else:
            out += block * (size // len(block) + 1)
    return bytes(out[:n])


sizes_strategy = st.one_of(
    st.sampled_from(SETTINGS),
    st.integers(1, 300).flatmap(
        lambda lo: st.integers(lo, 2000).flatmap(
            lambda avg: st.integers(avg, 5000).map(lambda hi: (lo, avg, hi))
        )
    ),
)
data_strategy = st.one_of(
    st.binary(max_size=6000),
    st.tuples(st.integers(0, 2**32), st.integers(0, 12_000)).map(lambda a: rand(*a)),
    st.tuples(st.binary(min_size=1, max_size=60), st.integers(1, 300)).map(lambda a: a[0] * a[1]),
)


# -- the hash ------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_buzhash_matches_the_reference(window: bytes) -> None:
    assert _chunker.buzhash(window) == ref.buzhash(window)


@given(st.binary(min_size=WINDOW_SIZE + 1, max_size=WINDOW_SIZE + 200))
def test_rolling_equals_hashing_each_window(data: bytes) -> None:
    h = _chunker.buzhash(data[:WINDOW_SIZE])
    for end in range(WINDOW_SIZE + 1, len(data) + 1):
        h = _chunker.buzhash_roll(h, data[end - 1 - WINDOW_SIZE], data[end - 1])
        assert h == ref.buzhash(data[end - WINDOW_SIZE : end])
    assert ref.buzhash_roll(1, 2, 3) == _chunker.buzhash_roll(1, 2, 3)


def test_buzhash_known_values() -> None:
    # One byte: the table entry itself (casync's table starts 0x458be752, 0xc10748cc).
    assert _chunker.buzhash(b"\x00") == 0x458BE752
    assert _chunker.buzhash(b"\x01") == 0xC10748CC
    assert _chunker.buzhash(b"") == 0
    # 48 equal bytes: rotations 32..47 repeat 0..15 and cancel, leaving 16..31.
    expected = 0
    for r in range(16, 32):
        expected ^= ref.rol32(0x458BE752, r)
    assert _chunker.buzhash(bytes(48)) == expected


def test_buzhash_roll_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="leave=256"):
        _chunker.buzhash_roll(0, 256, 0)
    with pytest.raises(ValueError, match="h=-1"):
        _chunker.buzhash_roll(-1, 0, 0)
    with pytest.raises(TypeError):
        _chunker.buzhash_roll(0, 0)  # type: ignore[call-arg]


# -- the discriminator and the cut test ----------------------------------------------------


@given(st.integers(1, CHUNK_SIZE_LIMIT_MAX))
@example(1)
@example(DEFAULT_AVG)
@example(9_324_000)  # around where casync's divisor changes sign
@example(9_325_000)
@example(CHUNK_SIZE_LIMIT_MAX)
def test_discriminator_matches_the_reference(avg: int) -> None:
    for lo, hi in [(1, CHUNK_SIZE_LIMIT_MAX), (avg, avg), (max(avg // 4, 1), avg * 4)]:
        hi = min(hi, CHUNK_SIZE_LIMIT_MAX)
        assert _chunker.discriminator(lo, avg, hi) == ref.discriminator(lo, avg, hi)


def test_discriminator_known_values() -> None:
    assert _chunker.discriminator(DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX) == 49535
    assert ChunkerParams().discriminator == 49535
    assert _chunker.discriminator(64, 256, 1024) == 192
    # Clamped to min (tiny averages) and to max (averages past the formula's pole).
    assert _chunker.discriminator(7, 7, 7) == 7
    assert _chunker.discriminator(1, 10 * MiB, 12 * MiB) == 12 * MiB
    assert _chunker.discriminator(1, 64 * MiB, 128 * MiB) == 128 * MiB


@given(st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1))
@example(2**32 - 1, 1)
@example(2**32 - 1, 2**32 - 1)
@example(2**32 - 2, 2**32 - 1)
@example(0, 1)
@example(0, 2)
@example(1, 2)
@example(2**32 - 1, 2**16)
def test_cut_test_is_the_modulo_rule(h: int, d: int) -> None:
    assert _chunker.is_cut_hash(h, d) == (h % d == d - 1)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((1, 0, 1), "avg_size=0"),
        ((1, CHUNK_SIZE_LIMIT_MAX + 1, CHUNK_SIZE_LIMIT_MAX + 1), "avg_size=134217729"),
        ((0, 1, 1), "min_size=0"),
        ((-5, 1, 1), "min_size=-5"),
        ((5, 4, 8), "min_size=5 is larger than avg_size=4"),
        ((1, 4, CHUNK_SIZE_LIMIT_MAX + 1), "max_size=134217729"),
        ((1, 4, 3), "max_size=3 is smaller than avg_size=4"),
        ((1, 4, 2**70), "max_size=1180591620717411303424"),
    ],
)
def test_bad_sizes_are_named(sizes: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _chunker.Chunker(*sizes)
    with pytest.raises(ValueError, match=message):
        _chunker.discriminator(*sizes)
    with pytest.raises(ValueError, match=message):
        ChunkerParams(*sizes)
    with pytest.raises(ValueError, match=message.split()[0]):
        ref.validate(*sizes)


def test_params_type_and_window_checks() -> None:
    with pytest.raises(TypeError, match="min_size must be an int"):
        ChunkerParams(1.5, 2, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_size must be an int"):
        ChunkerParams(1, 2, True)
    with pytest.raises(TypeError):
        _chunker.Chunker("1", 2, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_size=40 is below the 48-byte hash window"):
        ChunkerParams(16, 32, 40)
    _chunker.Chunker(16, 32, 40)  # casync's chunker itself takes it
    assert ChunkerParams(5, 5, 5).fixed  # fixed-size mode is fine below the window
    assert ChunkerParams(1, 2, 48).max_size == 48


def test_params_defaults_and_helpers() -> None:
    params = ChunkerParams()
    assert (params.min_size, params.avg_size, params.max_size) == (16384, 65536, 262144)
    assert params.spec == "16384:65536:262144"
    assert not params.fixed
    assert ChunkerParams.from_avg(DEFAULT_AVG) == params
    assert ChunkerParams.from_avg(16) == ChunkerParams(4, 16, 64)
    with pytest.raises(ValueError, match="max_size=8 is below"):
        ChunkerParams.from_avg(2)  # max 8: casync make fails on these too
    assert ChunkerParams.from_avg(64 * MiB) == ChunkerParams(16 * MiB, 64 * MiB, 128 * MiB)
    with pytest.raises(ValueError, match="avg_size=0"):
        ChunkerParams.from_avg(0)
    with pytest.raises(AttributeError):
        params.min_size = 3  # type: ignore[misc]


# -- the C kernel against the oracle -------------------------------------------------------


def test_oracle_rolling_equals_direct_hashing() -> None:
    for sizes in [(1, 4, 64), (49, 64, 100), (64, 256, 1024), (16, 32, 40)]:
        for data in (rand(1, 3000), mixed(2, 3000), bytes(500)):
            assert ref.chunk_ends(data, *sizes, rolling=True) == ref.chunk_ends(
                data, *sizes, rolling=False
            )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes_strategy, data_strategy)
def test_c_matches_the_oracle(sizes: tuple[int, int, int], data: bytes) -> None:
    assert c_ends(data, sizes) == ref.chunk_ends(data, *sizes)


def edge_inputs(lo: int, hi: int) -> list[bytes]:
    lengths = {0, 1, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, WINDOW_SIZE - 1, WINDOW_SIZE}
    lengths |= {WINDOW_SIZE + 1, 3 * hi + 7}
    out = [rand(n, n) for n in sorted(x for x in lengths if x >= 0)]
    out += [bytes(3 * hi + 5), b"\xff" * (2 * hi + 3), rand(9, 64) * (4 * hi // 64 + 3)]
    out += [mixed(3, min(5 * hi + 11, 150_000)), rand(4, min(20 * hi, 150_000))]
    return out


@pytest.mark.parametrize("sizes", SETTINGS, ids=lambda s: ":".join(map(str, s)))
def test_c_matches_the_oracle_on_edge_inputs(sizes: tuple[int, int, int]) -> None:
    lo, _, hi = sizes
    for data in edge_inputs(lo, hi):
        expected = ref.chunk_ends(data, *sizes)
        assert c_ends(data, sizes) == expected, len(data)
        # The same bytes fed one byte at a time, and in pieces around the edges.
        assert c_ends(data, sizes, list(range(len(data)))[: 3 * hi]) == expected
        assert c_ends(data, sizes, [lo - 1, lo, lo + 1, hi, hi + WINDOW_SIZE]) == expected


def test_c_matches_the_oracle_with_default_sizes() -> None:
    sizes = (DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX)
    for data in (rand(5, 600_000), mixed(6, 600_000), bytes(DEFAULT_MAX * 2 + 1)):
        expected = ref.chunk_ends(data, *sizes)
        assert c_ends(data, sizes) == expected
        assert (
            c_ends(data, sizes, [DEFAULT_MIN - WINDOW_SIZE, DEFAULT_MIN - 1, 100_001]) == expected
        )


@settings(max_examples=200, deadline=None)
@given(
    sizes_strategy,
    data_strategy,
    st.lists(st.integers(0, 12_000), max_size=30),
)
def test_split_points_do_not_move_the_cuts(
    sizes: tuple[int, int, int], data: bytes, pieces: list[int]
) -> None:
    pieces = [p for p in pieces if p <= len(data)]
    assert c_ends(data, sizes, pieces) == c_ends(data, sizes)


@pytest.mark.parametrize("size", [1, 7, 4096, 65536])
def test_fixed_size_mode(size: int) -> None:
    for n in (0, 1, size - 1, size, size + 1, 10 * size + 3):
        data = rand(n, n)
        ends = boundaries(data, ChunkerParams(size, size, size))
        assert ends == list(range(size, n, size)) + ([n] if n else [])
        assert c_ends(data, (size, size, size), [3, size + 1, 2 * size]) == ends


def test_chunks_respect_min_and_max() -> None:
    params = ChunkerParams(100, 300, 700)
    data = mixed(8, 300_000)
    ends = boundaries(data, params)
    sizes = [b - a for a, b in itertools.pairwise([0, *ends])]
    assert all(100 <= s <= 700 for s in sizes[:-1])
    assert 0 < sizes[-1] <= 700
    assert 700 in sizes  # the zero runs are cut at max


# -- the API -------------------------------------------------------------------------------


def test_feed_reports_offsets_relative_to_each_buffer() -> None:
    params = ChunkerParams(64, 256, 1024)
    data = rand(10, 50_000)
    ends = boundaries(data, params)
    chunker = Chunker(params)
    first = chunker.feed(data[:20_000])
    second = chunker.feed(data[20_000:])
    assert first + [20_000 + e for e in second] + [len(data)] == ends
    assert chunker.position == len(data)
    assert chunker.pending == len(data) - ends[-2]
    assert all(0 < e <= 30_000 for e in second)
    chunker.reset()
    assert (chunker.position, chunker.pending) == (0, 0)
    assert [*chunker.feed(data), len(data)] == ends
    assert "position=50000" in repr(chunker)


def test_feed_takes_any_contiguous_buffer() -> None:
    params = ChunkerParams(64, 256, 1024)
    data = rand(11, 40_000)
    expected = boundaries(data, params)
    with mmap.mmap(-1, len(data)) as mapped:
        mapped[:] = data
        assert boundaries(mapped, params) == expected
    assert boundaries(bytearray(data), params) == expected
    assert boundaries(memoryview(data), params) == expected
    assert boundaries(array.array("B", data), params) == expected
    assert boundaries(memoryview(b"x" + data)[1:], params) == expected
    assert boundaries(b"", params) == []
    with pytest.raises(BufferError):
        Chunker(params).feed(memoryview(data)[::2])
    with pytest.raises(TypeError):
        Chunker(params).feed("text")  # type: ignore[arg-type]


@pytest.mark.parametrize("block_size", [1, 333, 4096, 1 << 20])
def test_iter_chunks(tmp_path: Path, block_size: int) -> None:
    params = ChunkerParams(64, 256, 1024)
    data = mixed(13, 40_000 if block_size == 1 else 300_000)
    ends = boundaries(data, params)
    path = tmp_path / "data"
    path.write_bytes(data)
    for source in (path, str(path), io.BytesIO(data)):
        chunks = list(iter_chunks(source, params, block_size=block_size))
        assert b"".join(c for _, c in chunks) == data
        assert [o + len(c) for o, c in chunks] == ends
        assert [o for o, _ in chunks] == [0, *ends[:-1]]
        assert all(isinstance(c, bytes) for _, c in chunks)


def test_iter_chunks_edge_cases(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(iter_chunks(empty)) == []
    with pytest.raises(ValueError, match="block_size=0"):
        list(iter_chunks(empty, block_size=0))
    with pytest.raises(FileNotFoundError):
        list(iter_chunks(tmp_path / "missing"))
    stream = io.BytesIO(b"skip" + rand(14, 100_000))
    stream.read(4)  # from the current position
    assert b"".join(c for _, c in iter_chunks(stream)) == rand(14, 100_000)


def test_threads_chunk_in_parallel_with_the_same_results() -> None:
    params = ChunkerParams()
    inputs = [rand(20 + i, 8 * MiB) for i in range(4)]
    expected = [boundaries(d, params) for d in inputs]
    results: list[list[int] | None] = [None] * len(inputs)

    def work(i: int) -> None:
        chunker = Chunker(params)
        ends = []
        for start in range(0, len(inputs[i]), MiB):
            ends += [start + e for e in chunker.feed(memoryview(inputs[i])[start : start + MiB])]
        results[i] = [*ends, len(inputs[i])] if chunker.pending else ends

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


# -- against casync ------------------------------------------------------------------------

INDEX_TYPE = 0x96824D9C7B129FF9
TABLE_TYPE = 0xE75B9E112F17417D
TAIL_MARKER = 0x4B4F050E5549ECD1


def read_caibx(raw: bytes) -> tuple[tuple[int, int, int], list[int]]:
    """(min, avg, max) and the chunk end offsets of a .caibx, checking its framing."""
    size, kind, _flags, lo, avg, hi = struct.unpack_from("<6Q", raw, 0)
    assert (size, kind) == (48, INDEX_TYPE)
    assert struct.unpack_from("<2Q", raw, 48) == (2**64 - 1, TABLE_TYPE)
    items = raw[64:-40]
    assert len(items) % 40 == 0
    assert struct.unpack_from("<5Q", raw, len(raw) - 40) == (0, 0, 48, len(raw) - 48, TAIL_MARKER)
    return (lo, avg, hi), [struct.unpack_from("<Q", items, i)[0] for i in range(0, len(items), 40)]


def casync_make(casync: str, tmp: Path, data: bytes, sizes: tuple[int, int, int]) -> list[int]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "x").write_bytes(data)
    done = subprocess.run(
        [
            casync,
            "make",
            f"--store={tmp / 'store'}",
            f"--chunk-size={sizes[0]}:{sizes[1]}:{sizes[2]}",
            str(tmp / "x.caibx"),
            str(tmp / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header, ends = read_caibx((tmp / "x.caibx").read_bytes())
    assert header == sizes
    return ends


CASYNC_CASES = [
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "random", 3 * MiB),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "mixed", 3 * MiB),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "zeros", MiB + 17),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "random", 0),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "random", 1),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "random", DEFAULT_MIN - 1),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "random", DEFAULT_MIN),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "zeros", DEFAULT_MAX),
    ((DEFAULT_MIN, DEFAULT_AVG, DEFAULT_MAX), "zeros", DEFAULT_MAX + 1),
    ((64, 256, 1024), "random", 200_000),
    ((64, 256, 1024), "mixed", 200_000),
    ((1, 2, 48), "mixed", 20_000),
    ((47, 64, 100), "random", 20_000),
    ((48, 64, 100), "random", 20_000),
    ((49, 64, 100), "mixed", 20_000),
    ((200, 1000, 4000), "mixed", 300_000),
    ((1000, 1000, 1001), "mixed", 100_000),
    ((4096, 4096, 4096), "random", 100_001),
    ((7, 7, 7), "random", 1000),
    ((65536, 1 * MiB, 4 * MiB), "mixed", 12 * MiB),
    ((MiB, 10 * MiB, 12 * MiB), "random", 26_000_000),  # d == max: past the formula's pole
]


@pytest.mark.parametrize(
    ("sizes", "kind", "n"),
    CASYNC_CASES,
    ids=[f"{':'.join(map(str, s))}-{k}-{n}" for s, k, n in CASYNC_CASES],
)
def test_cuts_match_casync(
    casync: str, tmp_path: Path, sizes: tuple[int, int, int], kind: str, n: int
) -> None:
    data = {"random": rand, "mixed": mixed, "zeros": lambda _s, n: bytes(n)}[kind](n, n)
    expected = casync_make(casync, tmp_path, data, sizes)
    assert boundaries(data, ChunkerParams(*sizes)) == expected
    assert c_ends(data, sizes, [n // 3, n // 3 + 1, n // 2]) == expected


def test_casync_refuses_max_below_the_window(casync: str, tmp_path: Path) -> None:
    # casync's chunker cuts at 48 bytes when max < 48 (not fixed-size), then its index
    # writer refuses a chunk above max: `casync make` fails. ChunkerParams refuses these.
    (tmp_path / "x").write_bytes(rand(15, 1000))
    done = subprocess.run(
        [
            casync,
            "make",
            f"--store={tmp_path / 's'}",
            "--chunk-size=16:32:40",
            str(tmp_path / "x.caibx"),
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert c_ends(rand(15, 1000), (16, 32, 40))[:3] == [48, 96, 144]


def test_casync_cuts_exactly_at_min(casync: str, tmp_path: Path) -> None:
    # The first hashed window ends at min: its hash alone may end the chunk there.
    sizes = (64, 256, 1024)
    data = rand(200_000, 200_000)
    ends = casync_make(casync, tmp_path, data, sizes)
    lengths = [b - a for a, b in itertools.pairwise([0, *ends])]
    at_min = [i for i, n in enumerate(lengths[:-1]) if n == 64]
    assert at_min
    d = _chunker.discriminator(*sizes)
    for i in at_min:
        end = ends[i]
        assert _chunker.buzhash(data[end - WINDOW_SIZE : end]) % d == d - 1
    assert boundaries(data, ChunkerParams(*sizes)) == ends
