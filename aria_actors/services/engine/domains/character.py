"""Character generation as a workflow domain: the steps of making a character.

A character goes from a brief (the archetype asked for) to a published asset::

    make_character(c)
      ├── choose_archetype            the brief's archetype, if the studio knows it
      ├── build_body                  base mesh: from the library | scanned | generated
      ├── dress_body                  textures: generated on the GPU farm | hand-painted
      ├── bring_to_life               rig (auto | manual + skin weights), then animate
      │     └── animate               motion capture | library clips | keyframing
      ├── give_voice                  personality, then dialogue: generated | written
      └── review_and_publish          review (needs enough quality) then publish,
                                      or polish first (costs budget), or fail

Every step is an action with preconditions: it needs the steps before it, a resource
(the GPU farm, the scanner, the mocap stage, the language model, an asset of the
library for the archetype) and *budget* (credits). Each step adds *quality*; the
review passes only with ``quality[c] >= min_quality[c]``. So the alternatives matter:
with a small budget the cheap methods are tried first, and when the review cannot
pass even after polishing the planner backtracks into earlier choices (a scan
instead of a library mesh, ...). A brief that no combination satisfies fails with
``PlanningFailed``. Action costs are hours of work: ``branch_and_bound`` finds the
quickest way.

State variables (all keyed by the character's id unless said)::

    brief[c]         the archetype asked for
    archetype[c]     chosen archetype or None
    mesh[c]          None | "base" | "detailed";  mesh_source[c]: None | library | scan | generated
    textures[c]      None | "textured" | "baked"
    rig[c]           None | "rigged" | "weighted"
    animations[c]    None | "animated"
    personality[c]   None | "drafted";  dialogue[c]: None | "written"
    review[c]        None | "approved";  published[c]: bool
    quality[c], min_quality[c], budget[c]      ints
    archetypes[a]    True for each archetype the studio knows
    library[a]       True when the asset library has a base mesh for archetype a
    resources[r]     True when resource r is up: "gpu", "scanner", "mocap", "llm"
    faults[c]        for acting: the name of a command that misbehaves once (or None)

Commands ``c_<action>`` carry the actions out in the world; when ``faults[c]`` names
one, that command spends its budget but produces nothing (a failed render, say) and
clears the fault, so the observed state differs from the plan's prediction and the
actor replans. :func:`new_character` builds a state; the goal is
``("published", c, True)`` or the task ``("make_character", c)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain import Domain
from ..state import State

__all__ = ["DOMAINS", "STEPS", "domain", "new_character"]

RESOURCES = ("gpu", "scanner", "mocap", "llm")

STEPS: dict[str, tuple[float, int, int, str | None]] = {
    # action: (hours, credits, quality, resource needed)
    "choose_archetype": (0.5, 0, 0, None),
    "fetch_library_mesh": (0.5, 1, 1, None),
    "adapt_proportions": (2.0, 1, 1, None),
    "scan_actor": (3.0, 4, 3, "scanner"),
    "clean_scan": (4.0, 1, 1, None),
    "generate_base_mesh": (1.0, 3, 1, "gpu"),
    "sculpt_details": (6.0, 1, 2, None),
    "generate_textures": (1.0, 3, 1, "gpu"),
    "paint_textures": (8.0, 1, 3, None),
    "bake_maps": (0.5, 1, 0, None),
    "auto_rig": (0.5, 1, 0, None),
    "manual_rig": (6.0, 2, 1, None),
    "paint_skin_weights": (3.0, 1, 1, None),
    "capture_motion": (4.0, 4, 3, "mocap"),
    "apply_library_clips": (1.0, 1, 0, None),
    "keyframe_animation": (10.0, 2, 2, None),
    "draft_personality": (1.0, 0, 1, None),
    "generate_dialogue": (0.5, 1, 0, "llm"),
    "write_dialogue": (4.0, 1, 2, None),
    "polish": (3.0, 2, 1, None),
    "review": (1.0, 0, 0, None),
    "publish": (0.5, 0, 0, None),
}


def _pay(state: State, c: str, step: str) -> bool:
    """Whether ``step`` can be paid for (its resource up, budget left); pays if so."""
    _, credits, quality, resource = STEPS[step]
    if resource is not None and not state.resources.get(resource):
        return False
    if state.budget[c] < credits:
        return False
    state.budget[c] -= credits
    state.quality[c] += quality
    return True


# -- actions -------------------------------------------------------------------------------


def choose_archetype(state: State, c: str) -> State | None:
    wanted = state.brief.get(c)
    if (
        state.archetype[c] is None
        and state.archetypes.get(wanted)
        and _pay(state, c, "choose_archetype")
    ):
        state.archetype[c] = wanted
        return state
    return None


def _mesh_step(step: str, needs: str | None, source: str | None, result: str) -> Callable[..., Any]:
    def action(state: State, c: str) -> State | None:
        if state.archetype[c] is None or state.mesh[c] != needs:
            return None
        if step == "fetch_library_mesh" and not state.library.get(state.archetype[c]):
            return None
        if needs is not None and source is not None and state.mesh_source[c] != source:
            return None
        if not _pay(state, c, step):
            return None
        state.mesh[c] = result
        if needs is None:
            state.mesh_source[c] = source
        return state

    action.__name__ = step
    return action


fetch_library_mesh = _mesh_step("fetch_library_mesh", None, "library", "base")
adapt_proportions = _mesh_step("adapt_proportions", "base", "library", "detailed")
scan_actor = _mesh_step("scan_actor", None, "scan", "base")
clean_scan = _mesh_step("clean_scan", "base", "scan", "detailed")
generate_base_mesh = _mesh_step("generate_base_mesh", None, "generated", "base")
sculpt_details = _mesh_step("sculpt_details", "base", "generated", "detailed")


def _texture(step: str) -> Callable[..., Any]:
    def action(state: State, c: str) -> State | None:
        if state.mesh[c] != "detailed" or state.textures[c] is not None or not _pay(state, c, step):
            return None
        state.textures[c] = "textured"
        return state

    action.__name__ = step
    return action


generate_textures = _texture("generate_textures")
paint_textures = _texture("paint_textures")


def bake_maps(state: State, c: str) -> State | None:
    if state.textures[c] != "textured" or not _pay(state, c, "bake_maps"):
        return None
    state.textures[c] = "baked"
    return state


def auto_rig(state: State, c: str) -> State | None:
    # Auto-rigging needs clean topology: not a raw scan.
    if (
        state.textures[c] != "baked"
        or state.rig[c] is not None
        or state.mesh_source[c] == "scan"
        or not _pay(state, c, "auto_rig")
    ):
        return None
    state.rig[c] = "weighted"
    return state


def manual_rig(state: State, c: str) -> State | None:
    if state.textures[c] != "baked" or state.rig[c] is not None or not _pay(state, c, "manual_rig"):
        return None
    state.rig[c] = "rigged"
    return state


def paint_skin_weights(state: State, c: str) -> State | None:
    if state.rig[c] != "rigged" or not _pay(state, c, "paint_skin_weights"):
        return None
    state.rig[c] = "weighted"
    return state


def _animation(step: str, library_only: bool) -> Callable[..., Any]:
    def action(state: State, c: str) -> State | None:
        if state.rig[c] != "weighted" or state.animations[c] is not None:
            return None
        if library_only and not state.library.get(state.archetype[c]):
            return None
        if not _pay(state, c, step):
            return None
        state.animations[c] = "animated"
        return state

    action.__name__ = step
    return action


capture_motion = _animation("capture_motion", False)
apply_library_clips = _animation("apply_library_clips", True)
keyframe_animation = _animation("keyframe_animation", False)


def draft_personality(state: State, c: str) -> State | None:
    if state.archetype[c] is None or state.personality[c] is not None:
        return None
    if not _pay(state, c, "draft_personality"):
        return None
    state.personality[c] = "drafted"
    return state


def _dialogue(step: str) -> Callable[..., Any]:
    def action(state: State, c: str) -> State | None:
        if state.personality[c] != "drafted" or state.dialogue[c] is not None:
            return None
        if not _pay(state, c, step):
            return None
        state.dialogue[c] = "written"
        return state

    action.__name__ = step
    return action


generate_dialogue = _dialogue("generate_dialogue")
write_dialogue = _dialogue("write_dialogue")


def _complete(state: State, c: str) -> bool:
    return bool(
        state.animations[c] == "animated"
        and state.dialogue[c] == "written"
        and state.textures[c] == "baked"
    )


def polish(state: State, c: str) -> State | None:
    if not _complete(state, c) or state.review[c] is not None or not _pay(state, c, "polish"):
        return None
    return state


def review(state: State, c: str) -> State | None:
    if not _complete(state, c) or state.quality[c] < state.min_quality[c]:
        return None
    state.review[c] = "approved"
    return state


def publish(state: State, c: str) -> State | None:
    if state.review[c] != "approved" or state.published[c]:
        return None
    state.published[c] = True
    return state


ACTIONS: tuple[Callable[..., Any], ...] = (
    choose_archetype,
    fetch_library_mesh,
    adapt_proportions,
    scan_actor,
    clean_scan,
    generate_base_mesh,
    sculpt_details,
    generate_textures,
    paint_textures,
    bake_maps,
    auto_rig,
    manual_rig,
    paint_skin_weights,
    capture_motion,
    apply_library_clips,
    keyframe_animation,
    draft_personality,
    generate_dialogue,
    write_dialogue,
    polish,
    review,
    publish,
)


# -- commands ------------------------------------------------------------------------------


def _command(action: Callable[..., Any]) -> Callable[..., Any]:
    name = action.__name__

    def command(state: State, c: str) -> State | None:
        if state.faults.get(c) == name:
            # The step ran and was paid for, but produced nothing usable.
            state.faults[c] = None
            _pay(state, c, name)
            state.quality[c] -= STEPS[name][2]
            return state
        result: State | None = action(state, c)
        return result

    command.__name__ = f"c_{name}"
    return command


COMMANDS = tuple(_command(a) for a in ACTIONS)


# -- methods -------------------------------------------------------------------------------


def m_make_character(state: State, c: str) -> list[Any] | None:
    if c not in state.brief:
        return None
    first = [] if state.archetype[c] is not None else [("choose_archetype", c)]
    return [
        *first,
        ("build_body", c),
        ("dress_body", c),
        ("bring_to_life", c),
        ("give_voice", c),
        ("review_and_publish", c),
    ]


# Each step's first method notices what is done already (after a failed command the
# character replans from where it is), and each alternative resumes its own half-done
# work.


def m_body_done(state: State, c: str) -> list[Any] | None:
    return [] if state.mesh[c] == "detailed" else None


def _resume(state: State, c: str, source: str, first: str, second: str) -> list[Any]:
    if state.mesh[c] == "base" and state.mesh_source[c] == source:
        return [(second, c)]
    return [(first, c), (second, c)]


def m_body_from_library(state: State, c: str) -> list[Any] | None:
    if not state.library.get(state.archetype[c]):
        return None
    return _resume(state, c, "library", "fetch_library_mesh", "adapt_proportions")


def m_body_from_scan(state: State, c: str) -> list[Any] | None:
    if not state.resources.get("scanner"):
        return None
    return _resume(state, c, "scan", "scan_actor", "clean_scan")


def m_body_generated(state: State, c: str) -> list[Any] | None:
    if not state.resources.get("gpu"):
        return None
    return _resume(state, c, "generated", "generate_base_mesh", "sculpt_details")


def m_textures_done(state: State, c: str) -> list[Any] | None:
    if state.textures[c] == "baked":
        return []
    return [("bake_maps", c)] if state.textures[c] == "textured" else None


def m_textures_generated(state: State, c: str) -> list[Any] | None:
    if not state.resources.get("gpu"):
        return None
    return [("generate_textures", c), ("bake_maps", c)]


def m_textures_painted(state: State, c: str) -> list[Any]:
    return [("paint_textures", c), ("bake_maps", c)]


def m_rig_done(state: State, c: str) -> list[Any] | None:
    if state.rig[c] == "weighted":
        return [] if state.animations[c] is not None else [("animate", c)]
    return [("paint_skin_weights", c), ("animate", c)] if state.rig[c] == "rigged" else None


def m_auto_rig(state: State, c: str) -> list[Any] | None:
    if state.mesh_source[c] == "scan":
        return None
    return [("auto_rig", c), ("animate", c)]


def m_manual_rig(state: State, c: str) -> list[Any]:
    return [("manual_rig", c), ("paint_skin_weights", c), ("animate", c)]


def m_animate_library(state: State, c: str) -> list[Any] | None:
    if not state.library.get(state.archetype[c]):
        return None
    return [("apply_library_clips", c)]


def m_animate_mocap(state: State, c: str) -> list[Any] | None:
    if not state.resources.get("mocap"):
        return None
    return [("capture_motion", c)]


def m_animate_keyframes(state: State, c: str) -> list[Any]:
    return [("keyframe_animation", c)]


def m_voice_done(state: State, c: str) -> list[Any] | None:
    return [] if state.dialogue[c] is not None else None


def m_voice_generated(state: State, c: str) -> list[Any] | None:
    if not state.resources.get("llm"):
        return None
    draft = [] if state.personality[c] is not None else [("draft_personality", c)]
    return [*draft, ("generate_dialogue", c)]


def m_voice_written(state: State, c: str) -> list[Any]:
    draft = [] if state.personality[c] is not None else [("draft_personality", c)]
    return [*draft, ("write_dialogue", c)]


def m_review_passes(state: State, c: str) -> list[Any] | None:
    if state.quality[c] < state.min_quality[c]:
        return None
    return [("review", c), ("publish", c)]


def m_polish_first(state: State, c: str) -> list[Any] | None:
    if state.quality[c] >= state.min_quality[c] or state.budget[c] < STEPS["polish"][1]:
        return None
    return [("polish", c), ("review_and_publish", c)]


def m_published(state: State, c: str, value: bool) -> list[Any] | None:
    if value is not True or state.published.get(c) is not False:
        return None
    return [("make_character", c)]


def domain() -> Domain:
    """A new character-generation domain named ``character``."""
    d = Domain("character")
    for action in ACTIONS:
        d.declare_actions(action, cost=STEPS[action.__name__][0])
    d.declare_commands(*COMMANDS)
    d.declare_task_methods("make_character", m_make_character)
    d.declare_task_methods(
        "build_body", m_body_done, m_body_from_library, m_body_generated, m_body_from_scan
    )
    d.declare_task_methods("dress_body", m_textures_done, m_textures_generated, m_textures_painted)
    d.declare_task_methods("bring_to_life", m_rig_done, m_auto_rig, m_manual_rig)
    d.declare_task_methods("animate", m_animate_library, m_animate_mocap, m_animate_keyframes)
    d.declare_task_methods("give_voice", m_voice_done, m_voice_generated, m_voice_written)
    d.declare_task_methods("review_and_publish", m_review_passes, m_polish_first)
    d.declare_unigoal_methods("published", m_published)
    return d


DOMAINS = (domain(),)


def new_character(
    c: str,
    archetype: str,
    *,
    budget: int = 20,
    min_quality: int = 6,
    archetypes: tuple[str, ...] = ("warrior", "mage", "rogue", "bard"),
    library: tuple[str, ...] = ("warrior",),
    resources: tuple[str, ...] = RESOURCES,
    fault: str | None = None,
    state: State | None = None,
) -> State:
    """A state with character ``c`` briefed as ``archetype`` (added to ``state`` if given).

    The studio's ``archetypes``, ``library`` and ``resources`` are set on a new state
    only; ``fault`` names a command that misbehaves once when acting.
    """
    if state is None:
        state = State(
            "studio",
            archetypes=dict.fromkeys(archetypes, True),
            library=dict.fromkeys(library, True),
            resources={r: r in resources for r in RESOURCES},
        )
        for var in (
            "brief", "archetype", "mesh", "mesh_source", "textures", "rig", "animations",
            "personality", "dialogue", "review", "published", "quality", "min_quality",
            "budget", "faults",
        ):  # fmt: skip
            setattr(state, var, {})
    state.brief[c] = archetype
    for var in (
        "archetype", "mesh", "mesh_source", "textures", "rig", "animations",
        "personality", "dialogue", "review", "faults",
    ):  # fmt: skip
        getattr(state, var)[c] = None
    state.faults[c] = fault
    state.published[c] = False
    state.quality[c] = 0
    state.min_quality[c] = min_quality
    state.budget[c] = budget
    return state
