"""Logistics: trucks carry packages within a city, planes between cities' airports.

State variables::

    at[x]          where package, truck or plane x is: a location, or (a package) the
                   truck or plane carrying it
    in_city[l]     the city of location l
    airport[l]     True when location l is an airport
    truck[t]       the city of truck t (a truck never leaves its city)
    plane[p]       True for every plane
    package[o]     True for every package

Actions, with their costs: ``drive_truck(t, l)`` 2, ``fly_plane(p, a)`` 10,
``load_truck(o, t)``, ``unload_truck(o, l)``, ``load_plane(o, p)``,
``unload_plane(o, a)`` 1 each; commands ``c_<action>`` do the same in the world.

Goals are ``("at", package, location)`` unigoals, or a :class:`Multigoal` of them (split
one by one). The unigoal methods, in the order they are tried: already in a vehicle
(unload where it is wanted, or take it out first), within one city by truck, between
cities by truck-plane-truck; a truck or plane goal drives or flies it. Planes are
chosen nearest first (one already at the airport), another plane is the alternative.
The task ``("deliver", package, location)`` is the goal as a task.

:func:`random_problem` makes a problem from a seed.
"""

from __future__ import annotations

import random
from typing import Any

from ..domain import Domain, m_split_multigoal
from ..state import Multigoal, State

__all__ = ["DOMAINS", "domain", "random_problem"]


def _airport_of(state: State, city: str) -> str | None:
    for loc, is_airport in state.airport.items():
        if is_airport and state.in_city[loc] == city:
            return str(loc)
    return None


# -- actions -------------------------------------------------------------------------------


def drive_truck(state: State, t: str, loc: str) -> State | None:
    if t in state.truck and state.in_city.get(loc) == state.truck[t]:
        state.at[t] = loc
        return state
    return None


def fly_plane(state: State, p: str, airport: str) -> State | None:
    if state.plane.get(p) and state.airport.get(airport):
        state.at[p] = airport
        return state
    return None


def load_truck(state: State, o: str, t: str) -> State | None:
    if state.package.get(o) and t in state.truck and state.at[o] == state.at[t]:
        state.at[o] = t
        return state
    return None


def unload_truck(state: State, o: str, loc: str) -> State | None:
    t = state.at.get(o)
    if t in state.truck and state.at[t] == loc:
        state.at[o] = loc
        return state
    return None


def load_plane(state: State, o: str, p: str) -> State | None:
    if state.package.get(o) and state.plane.get(p) and state.at[o] == state.at[p]:
        state.at[o] = p
        return state
    return None


def unload_plane(state: State, o: str, airport: str) -> State | None:
    p = state.at.get(o)
    if p in state.plane and state.at[p] == airport:
        state.at[o] = airport
        return state
    return None


ACTIONS = (drive_truck, fly_plane, load_truck, unload_truck, load_plane, unload_plane)


def c_drive_truck(state: State, t: str, loc: str) -> State | None:
    return drive_truck(state, t, loc)


def c_fly_plane(state: State, p: str, airport: str) -> State | None:
    return fly_plane(state, p, airport)


def c_load_truck(state: State, o: str, t: str) -> State | None:
    return load_truck(state, o, t)


def c_unload_truck(state: State, o: str, loc: str) -> State | None:
    return unload_truck(state, o, loc)


def c_load_plane(state: State, o: str, p: str) -> State | None:
    return load_plane(state, o, p)


def c_unload_plane(state: State, o: str, airport: str) -> State | None:
    return unload_plane(state, o, airport)


# -- unigoal methods for "at" ------------------------------------------------------------------


def m_vehicle_moves(state: State, x: str, loc: str) -> list[Any] | None:
    """A truck drives, a plane flies."""
    if x in state.truck:
        return [("drive_truck", x, loc)] if state.in_city.get(loc) == state.truck[x] else None
    if state.plane.get(x):
        return [("fly_plane", x, loc)] if state.airport.get(loc) else None
    return None


def m_unload_here(state: State, o: str, loc: str) -> list[Any] | None:
    """A loaded package is unloaded once its vehicle is at the destination."""
    if not state.package.get(o):
        return None
    vehicle = state.at[o]
    if vehicle in state.truck and state.in_city.get(loc) == state.truck[vehicle]:
        return [("at", vehicle, loc), ("unload_truck", o, loc)]
    if state.plane.get(vehicle) and state.airport.get(loc):
        return [("at", vehicle, loc), ("unload_plane", o, loc)]
    return None


def m_take_out(state: State, o: str, loc: str) -> list[Any] | None:
    """A loaded package bound elsewhere is first unloaded where its vehicle is."""
    if not state.package.get(o):
        return None
    vehicle = state.at[o]
    if vehicle in state.truck:
        return [("unload_truck", o, state.at[vehicle]), ("at", o, loc)]
    if state.plane.get(vehicle):
        return [("unload_plane", o, state.at[vehicle]), ("at", o, loc)]
    return None


def m_by_truck(state: State, o: str, loc: str) -> list[Any] | None:
    """Within one city: a truck of that city fetches the package and drives it there."""
    if not state.package.get(o) or state.at[o] not in state.in_city:
        return None
    city = state.in_city[state.at[o]]
    if state.in_city.get(loc) != city:
        return None
    trucks = [t for t, c in state.truck.items() if c == city]
    if not trucks:
        return None
    here = [t for t in trucks if state.at[t] == state.at[o]]
    t = (here or trucks)[0]
    return [("at", t, state.at[o]), ("load_truck", o, t), ("at", t, loc), ("unload_truck", o, loc)]


def _by_plane(state: State, o: str, loc: str, nearest: bool) -> list[Any] | None:
    if not state.package.get(o) or state.at[o] not in state.in_city:
        return None
    origin, target = state.in_city[state.at[o]], state.in_city.get(loc)
    if target is None or origin == target:
        return None
    a1, a2 = _airport_of(state, origin), _airport_of(state, target)
    if a1 is None or a2 is None:
        return None
    planes = [p for p, yes in state.plane.items() if yes]
    at_origin = [p for p in planes if state.at[p] == a1]
    elsewhere = [p for p in planes if state.at[p] != a1]
    chosen = at_origin if nearest else elsewhere
    if not chosen:
        return None
    p = chosen[0]
    return [
        ("at", o, a1),
        ("at", p, a1),
        ("load_plane", o, p),
        ("at", p, a2),
        ("unload_plane", o, a2),
        ("at", o, loc),
    ]


def m_by_plane_nearest(state: State, o: str, loc: str) -> list[Any] | None:
    """Between cities, with a plane already at the origin's airport."""
    return _by_plane(state, o, loc, nearest=True)


def m_by_plane_flown_in(state: State, o: str, loc: str) -> list[Any] | None:
    """Between cities, with a plane flown in from elsewhere (the alternative)."""
    return _by_plane(state, o, loc, nearest=False)


def m_deliver(state: State, o: str, loc: str) -> list[Any]:
    return [("at", o, loc)]


def domain() -> Domain:
    """A new logistics domain named ``logistics``."""
    d = Domain("logistics")
    d.declare_actions(load_truck, unload_truck, load_plane, unload_plane, cost=1.0)
    d.declare_actions(drive_truck, cost=2.0)
    d.declare_actions(fly_plane, cost=10.0)
    d.declare_commands(
        c_drive_truck, c_fly_plane, c_load_truck, c_unload_truck, c_load_plane, c_unload_plane
    )
    d.declare_unigoal_methods(
        "at",
        m_vehicle_moves,
        m_unload_here,
        m_take_out,
        m_by_truck,
        m_by_plane_nearest,
        m_by_plane_flown_in,
    )
    d.declare_task_methods("deliver", m_deliver)
    d.declare_multigoal_methods(m_split_multigoal)
    return d


DOMAINS = (domain(),)


# -- problems ------------------------------------------------------------------------------


def random_problem(
    seed: int = 0, *, cities: int = 3, locations: int = 3, planes: int = 2, packages: int = 4
) -> tuple[State, Multigoal]:
    """A problem: ``cities`` cities of ``locations`` locations each (the first one an
    airport), a truck per city, ``planes`` planes and ``packages`` packages at random
    places, each wanted at another random place. Deterministic in its arguments."""
    if cities < 1 or locations < 1 or packages < 0 or planes < (1 if cities > 1 else 0):
        raise ValueError("a logistics problem needs a city, a location, and a plane per 2 cities")
    rng = random.Random(f"logistics/{seed}/{cities}/{locations}/{planes}/{packages}")
    in_city: dict[str, str] = {}
    airport: dict[str, bool] = {}
    for c in range(1, cities + 1):
        for i in range(1, locations + 1):
            loc = f"loc{c}_{i}"
            in_city[loc] = f"city{c}"
            airport[loc] = i == 1
    locs = list(in_city)
    airports = [loc for loc in locs if airport[loc]]
    at: dict[str, str] = {}
    truck: dict[str, str] = {}
    for c in range(1, cities + 1):
        t = f"truck{c}"
        truck[t] = f"city{c}"
        at[t] = rng.choice([loc for loc in locs if in_city[loc] == f"city{c}"])
    plane = {f"plane{i}": True for i in range(1, planes + 1)}
    for p in plane:
        at[p] = rng.choice(airports)
    package: dict[str, bool] = {}
    goal: dict[str, str] = {}
    for i in range(1, packages + 1):
        o = f"pkg{i}"
        package[o] = True
        at[o] = rng.choice(locs)
        goal[o] = rng.choice([loc for loc in locs if loc != at[o]] or locs)
    start = State(
        f"logistics{seed}",
        at=at,
        in_city=in_city,
        airport=airport,
        truck=truck,
        plane=plane,
        package=package,
    )
    return start, Multigoal(f"logistics_goal{seed}", at=goal)
