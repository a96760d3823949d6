"""aria_engine benchmark: our planner against GTPyhop (``gtpyhop`` 2.0.2) in the same run.

Run it with ``make bench-engine`` (``.venv/bin/python benchmarks/bench_engine.py``).

- **random blocks**: random n-block problems (n = 80 ... 2,560; seeded), solved with two
  GTPyhop domain modules, each unmodified on both sides — ``engine_blocks_domain.py``
  (constant work per step: the time is the planners') and the bundled ``blocks_htn``
  (whose methods rescan every block at every step: the time is mostly the domain's own,
  which the benchmark measures too) — real GTPyhop, and the same module loaded on our
  planner by ``load_gtpyhop_module`` — with the same
  strategy (``iterative_dfs_backtracking`` by default: GTPyhop's recursive strategy hits
  Python's recursion limit long before 2,560 blocks). Every plan is validated by replaying
  it and checking the goal. Targets: >= 10x at 1,280 blocks, 2,560 blocks under 2 s.
- **IPC-2020 total order**: the bundled Blocksworld-GTOHP and Childsnack problems, solved
  with each planner (both capped at ``--ipc-cap`` seconds per problem, reported as a
  timeout): problems solved and total time. BW_rand_43 has no plan as bundled (b42 is
  missing from its `blocks`); it is also timed as p20.hddl declares it.

Each time is the best of ``--repeats`` runs (GTPyhop's big cases run once: see
``--gtpyhop-repeats``); results go to ``benchmarks/results/engine.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

with contextlib.redirect_stdout(io.StringIO()):
    import gtpyhop  # the real one, for comparison

from aria_actors.services.engine import (  # noqa: E402
    BudgetExceeded,
    Planner,
    PlanningFailed,
    load_gtpyhop_module,
)

STRATEGY = "iterative_dfs_backtracking"


def quiet() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


# -- random blocks ---------------------------------------------------------------------------


def random_towers(rng: random.Random, blocks: list[str]) -> dict[str, str]:
    """A random arrangement: each block starts a new tower (p = 0.1) or tops a random one."""
    order = blocks[:]
    rng.shuffle(order)
    tops: list[str] = []
    pos: dict[str, str] = {}
    for b in order:
        if not tops or rng.random() < 0.1:
            pos[b] = "table"
            tops.append(b)
        else:
            i = rng.randrange(len(tops))
            pos[b] = tops[i]
            tops[i] = b
    return pos


def blocks_problem(n: int, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    blocks = [f"b{i}" for i in range(n)]
    return random_towers(rng, blocks), random_towers(rng, blocks)


def make_state(
    state_cls: type, multigoal_cls: type, start: dict[str, str], goal: dict[str, str]
) -> tuple[Any, Any]:
    state = state_cls("start")
    state.pos = dict(start)
    covered = set(start.values())
    state.clear = {b: b not in covered for b in start}
    state.holding = {"hand": False}
    mg = multigoal_cls("goal")
    mg.pos = dict(goal)
    return state, mg


def _require(ok: bool, action: Any) -> None:
    if not ok:
        raise AssertionError(f"{action} does not apply on replay")


def check_blocks(plan: list[Any], start: dict[str, str], goal: dict[str, str]) -> None:
    """Replay a blocks plan on plain dicts (independent of both planners)."""
    pos = dict(start)
    clear = {b: b not in set(start.values()) for b in start}
    hand: str | bool = False
    for act in plan:
        name, b = act[0], act[1]
        if name == "pickup":
            _require(pos[b] == "table" and clear[b] and hand is False, act)
            pos[b], clear[b], hand = "hand", False, b
        elif name == "unstack":
            _require(pos[b] == act[2] and clear[b] and hand is False, act)
            clear[act[2]] = True
            pos[b], clear[b], hand = "hand", False, b
        elif name == "putdown":
            assert pos[b] == "hand", act
            pos[b], clear[b], hand = "table", True, False
        elif name == "stack":
            _require(pos[b] == "hand" and clear[act[2]], act)
            clear[act[2]] = False
            pos[b], clear[b], hand = act[2], True, False
        else:
            raise AssertionError(f"unknown action {act}")
    assert all(pos[b] == where for b, where in goal.items()), "goal not reached"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def methods_time(table: dict[str, list[Any]], run: Callable[[], Any]) -> float:
    """Seconds spent inside the methods of ``table`` (task name -> methods) during ``run``.

    Wraps each method in a timer for the run (adding a little call overhead to what is
    measured) and restores the table after.
    """
    spent = [0.0]
    saved = {task: list(methods) for task, methods in table.items()}

    def timer(method: Callable[..., Any]) -> Callable[..., Any]:
        def timed_method(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args)
            finally:
                spent[0] += time.perf_counter() - t0

        timed_method.__name__ = method.__name__
        return timed_method

    for task, methods in saved.items():
        table[task] = [timer(m) for m in methods]
    try:
        run()
    finally:
        table.update(saved)
    return spent[0]


def bench_blocks(
    domain: str, sizes: list[int], repeats: int, gt_repeats: int, gt_skip_above: int
) -> list[dict[str, Any]]:
    """Time both planners on random problems with one domain module ('fast' or 'blocks_htn')."""
    if domain == "fast":
        source = str(HERE / "engine_blocks_domain.py")
        with quiet():
            real = importlib.import_module("engine_blocks_domain")
    else:
        source = "gtpyhop.examples.blocks_htn"
        with quiet():
            real = importlib.import_module(source)
    with quiet():
        ours = load_gtpyhop_module(source)
    planner = Planner(ours.domain, STRATEGY)

    def todo(mg_cls: type, goal: dict[str, str], mg: Any) -> list[Any]:
        return [("solve", goal)] if domain == "fast" else [("achieve", mg)]

    rows = []
    for n in sizes:
        start, goal = blocks_problem(n, seed=n)

        def run_ours(start: dict[str, str] = start, goal: dict[str, str] = goal) -> list[Any]:
            s, g = make_state(ours.facade.State, ours.facade.Multigoal, start, goal)
            return planner.find_plan(s, todo(ours.facade.Multigoal, goal, g)).as_list()

        def run_real(start: dict[str, str] = start, goal: dict[str, str] = goal) -> list[Any]:
            s, g = make_state(gtpyhop.State, gtpyhop.Multigoal, start, goal)
            with quiet(), gtpyhop.PlannerSession(domain=real.the_domain, strategy=STRATEGY) as ses:
                result = ses.find_plan(s, todo(gtpyhop.Multigoal, goal, g))
            assert result.success, result.error
            return list(result.plan)

        t_ours, plan_ours = timed(run_ours, repeats)
        check_blocks(plan_ours, start, goal)
        row: dict[str, Any] = {
            "domain": domain,
            "n": n,
            "actions": len(plan_ours),
            "ours_s": t_ours,
        }
        if n <= gt_skip_above:
            t_real, plan_real = timed(run_real, gt_repeats if n >= 640 else repeats)
            check_blocks(plan_real, start, goal)
            row.update(gtpyhop_s=t_real, ratio=t_real / t_ours, same_plan=plan_real == plan_ours)
            if domain == "blocks_htn" and n >= 1280:
                # The domain's own share: no planner can beat GTPyhop by more than
                # gtpyhop_s / (time in the domain's methods).
                row["gtpyhop_methods_s"] = methods_time(real.the_domain._task_method_dict, run_real)
                row["ours_methods_s"] = methods_time(ours.domain.task_methods, run_ours)
                row["ceiling"] = t_real / row["gtpyhop_methods_s"]
        rows.append(row)
        gt = (
            f"  gtpyhop {row['gtpyhop_s']:8.3f} s  ratio {row['ratio']:6.1f}x"
            f"  same plan: {row['same_plan']}"
            if "gtpyhop_s" in row
            else "  gtpyhop skipped"
        )
        print(f"  n={n:5d}  actions={len(plan_ours):6d}  ours {t_ours:8.3f} s{gt}", flush=True)
        if "ceiling" in row:
            print(
                f"          in the domain's methods: gtpyhop {row['gtpyhop_methods_s']:.3f} s, "
                f"ours {row['ours_methods_s']:.3f} s -> best possible ratio "
                f"{row['ceiling']:.1f}x",
                flush=True,
            )
    return rows


# -- IPC-2020 total order --------------------------------------------------------------------


def ipc_family(family: str, cap: float) -> dict[str, Any]:
    dotted = f"gtpyhop.examples.ipc-2020-total-order.{family}"
    with quiet():
        real_pkg = importlib.import_module(dotted)
        ours = load_gtpyhop_module(dotted)
        problem_ids = sorted(ours.module.get_problems())
    attr = "served" if family == "Childsnack" else "on"

    def todo(mg_cls: type, pid: str, goal: Any) -> list[Any]:
        mg = mg_cls(f"goal_{pid}")
        setattr(mg, attr, goal)
        return [mg]

    out: dict[str, Any] = {"problems": len(problem_ids), "ours": {}, "gtpyhop": {}}
    planner = Planner(ours.domain, STRATEGY, timeout=cap)  # the same cap as GTPyhop
    for pid in problem_ids:
        with quiet():
            s, goal = ours.module.get_problems()[pid][:2]
        t0 = time.perf_counter()
        try:
            plan = planner.find_plan(s, todo(ours.facade.Multigoal, pid, goal))
            replayed = s
            for a in plan.actions:
                replayed = ours.domain.actions[a[0]](replayed.copy(), *a[1:])
                assert replayed, a
            ok: Any = len(plan)
        except (PlanningFailed, BudgetExceeded) as e:
            ok = type(e).__name__
        out["ours"][pid] = {"result": ok, "s": time.perf_counter() - t0}
        with quiet():
            rs, rgoal = real_pkg.get_problems()[pid][:2]
            t0 = time.perf_counter()
            try:
                with gtpyhop.PlannerSession(domain=real_pkg.the_domain, strategy=STRATEGY) as ses:
                    res = ses.find_plan(
                        rs, todo(gtpyhop.Multigoal, pid, rgoal), timeout_ms=int(cap * 1000)
                    )
                rok: Any = (
                    len(res.plan)
                    if res.success
                    else ("timeout" if "time" in str(res.error).lower() else "no plan")
                )
            except Exception as e:
                rok = f"error {type(e).__name__}"
        out["gtpyhop"][pid] = {"result": rok, "s": time.perf_counter() - t0}
    return out


def bw_rand_43_corrected(cap: float) -> dict[str, Any]:
    """BW_rand_43 as p20.hddl declares it: the bundled problem leaves b42 out of `blocks`,
    so no plan exists (tests/services/engine/test_compat.py proves it); with b42 added,
    both planners' time and whether the plans agree (ours without `nop`s = GTPyhop 2.x)."""
    dotted = "gtpyhop.examples.ipc-2020-total-order.Blocksworld-GTOHP"
    with quiet():
        real_pkg = importlib.import_module(dotted)
        ours = load_gtpyhop_module(dotted)
        s, goal = ours.module.get_problems()["BW_rand_43"][:2]
        rs, rgoal = real_pkg.get_problems()["BW_rand_43"][:2]
    s.blocks = set(s.blocks) | {"b42"}
    rs.blocks = set(rs.blocks) | {"b42"}
    mg = ours.facade.Multigoal("goal")
    mg.on = goal
    rmg = gtpyhop.Multigoal("goal")
    rmg.on = rgoal
    t_ours, plan = timed(lambda: Planner(ours.domain, STRATEGY).find_plan(s, [mg]), 3)

    def run_real() -> Any:
        with quiet(), gtpyhop.PlannerSession(domain=real_pkg.the_domain, strategy=STRATEGY) as ses:
            return ses.find_plan(rs.copy(), [rmg], timeout_ms=int(cap * 1000))

    t_real, res = timed(run_real, 3)
    agree = res.success and [a for a in plan.actions if a != ("nop",)] == list(res.plan)
    print(
        f"  BW_rand_43 with b42 declared: ours {len(plan)} actions in {t_ours * 1e3:.1f} ms, "
        f"gtpyhop {len(res.plan) if res.success else 'no plan'} in {t_real * 1e3:.1f} ms "
        f"({t_real / t_ours:.1f}x); same plan without nops: {agree}",
        flush=True,
    )
    return {"ours_s": t_ours, "gtpyhop_s": t_real, "ours_actions": len(plan), "agree": agree}


def summarise(family: str, res: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"family": family, "problems": res["problems"]}
    for side in ("ours", "gtpyhop"):
        solved = [v for v in res[side].values() if isinstance(v["result"], int)]
        row[f"{side}_solved"] = len(solved)
        row[f"{side}_s"] = sum(v["s"] for v in res[side].values())
        row[f"{side}_timeouts"] = sum(1 for v in res[side].values() if v["result"] == "timeout")
    print(
        f"  {family:18s} problems {row['problems']:3d}  ours solved {row['ours_solved']:3d} "
        f"in {row['ours_s']:7.2f} s  |  gtpyhop solved {row['gtpyhop_solved']:3d} in "
        f"{row['gtpyhop_s']:7.2f} s ({row['gtpyhop_timeouts']} timeouts)",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description="aria_engine planner benchmark")
    parser.add_argument("--sizes", type=int, nargs="*", default=[80, 160, 320, 640, 1280, 2560])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gtpyhop-repeats", type=int, default=1)
    parser.add_argument("--gtpyhop-max-n", type=int, default=2560, help="skip GTPyhop above this n")
    parser.add_argument(
        "--ipc-cap", type=float, default=10.0, help="seconds per IPC problem, both planners"
    )
    parser.add_argument("--no-ipc", action="store_true")
    parser.add_argument("--domains", nargs="*", default=["fast", "blocks_htn"])
    parser.add_argument("--json", type=Path, default=HERE / "results" / "engine.json")
    args = parser.parse_args()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))  # blocks_htn's own is_done recursion

    blocks = []
    for domain in args.domains:
        label = "engine_blocks_domain.py" if domain == "fast" else "gtpyhop-examples blocks_htn"
        print(f"random blocks ({label}, {STRATEGY}, plans replayed):", flush=True)
        blocks += bench_blocks(
            domain, args.sizes, args.repeats, args.gtpyhop_repeats, args.gtpyhop_max_n
        )
    ipc_rows, ipc_raw = [], {}
    corrected: dict[str, Any] = {}
    if not args.no_ipc:
        print(f"\nIPC-2020 total order ({STRATEGY}, GTPyhop capped at {args.ipc_cap:g} s/problem):")
        for family in ("Blocksworld-GTOHP", "Childsnack"):
            ipc_raw[family] = ipc_family(family, args.ipc_cap)
            ipc_rows.append(summarise(family, ipc_raw[family]))
        corrected = bw_rand_43_corrected(args.ipc_cap)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "strategy": STRATEGY,
                "blocks": blocks,
                "ipc": ipc_rows,
                "ipc_problems": ipc_raw,
                "bw_rand_43_corrected": corrected,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\njson    : {args.json}")


if __name__ == "__main__":
    main()
