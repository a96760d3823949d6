"""A GTPyhop blocks-world domain whose methods do O(1) work per step (O(n) once).

Used by ``bench_engine.py`` as-is on both planners: real GTPyhop imports it normally,
ours loads it with ``load_gtpyhop_module``, so any difference in time is the planners'.
(The bundled ``blocks_htn`` rescans every block at every step, so its time is mostly the
domain's own, the same on both sides; the benchmark reports it too.)

Strategy of the domain: put every block on the table, top blocks first, then build the
goal towers bottom-up, each block placed by achieving the unigoal ``('pos', b, below)``.
Task ``('solve', goal)`` with ``goal = {block: where}``.
"""

import gtpyhop

the_domain = gtpyhop.Domain(__name__)


def pickup(s, x):
    if s.pos[x] == "table" and s.clear[x] and s.holding["hand"] is False:
        s.pos[x] = "hand"
        s.clear[x] = False
        s.holding["hand"] = x
        return s
    return False


def unstack(s, b1, b2):
    if s.pos[b1] == b2 and b2 != "table" and s.clear[b1] and s.holding["hand"] is False:
        s.pos[b1] = "hand"
        s.clear[b1] = False
        s.holding["hand"] = b1
        s.clear[b2] = True
        return s
    return False


def putdown(s, b1):
    if s.pos[b1] == "hand":
        s.pos[b1] = "table"
        s.clear[b1] = True
        s.holding["hand"] = False
        return s
    return False


def stack(s, b1, b2):
    if s.pos[b1] == "hand" and s.clear[b2]:
        s.pos[b1] = b2
        s.clear[b1] = True
        s.holding["hand"] = False
        s.clear[b2] = False
        return s
    return False


gtpyhop.declare_actions(pickup, unstack, putdown, stack)


def _top_down(pos):
    """Every block, each listed before the block under it."""
    above = {}
    for b, under in pos.items():
        if under not in ("table", "hand"):
            above[under] = b
    order = []
    for b, under in pos.items():
        if under == "table":
            tower = [b]
            while tower[-1] in above:
                tower.append(above[tower[-1]])
            order.extend(reversed(tower))
    return order


def _bottom_up(goal):
    """Goal placements, each after the placement of the block it goes on."""
    order, placed = [], set()
    pending = dict(goal)
    while pending:
        progress = False
        for b, under in list(pending.items()):
            if under == "table" or under in placed or under not in pending:
                order.append((b, under))
                placed.add(b)
                del pending[b]
                progress = True
        if not progress:
            return None
    return order


def m_solve(s, goal):
    order = _bottom_up(goal)
    if order is None:
        return False
    todo = [("to_table", b) for b in _top_down(s.pos)]
    todo.extend(("pos", b, under) for b, under in order if under != "table")
    return todo


def m_to_table(s, b):
    if s.pos[b] == "table":
        return []
    if s.clear[b]:
        return [("unstack", b, s.pos[b]), ("putdown", b)]
    return False


def m_pos_stack(s, b, under):
    if s.pos[b] == "table" and s.clear[b] and s.clear[under]:
        return [("pickup", b), ("stack", b, under)]
    return False


gtpyhop.declare_task_methods("solve", m_solve)
gtpyhop.declare_task_methods("to_table", m_to_table)
gtpyhop.declare_unigoal_methods("pos", m_pos_stack)
