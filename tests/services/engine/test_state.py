from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.engine import Multigoal, State
from aria_actors.services.engine.state import goals_not_achieved


def test_variables_are_attributes_and_missing_ones_raise_attribute_error() -> None:
    s = State("s", pos={"a": "table"}, holding=None)
    assert s.pos["a"] == "table"
    assert s.holding is None
    assert not hasattr(s, "nope")
    assert getattr(s, "nope", 7) == 7
    assert s.state_vars() == ["pos", "holding"]


def test_copy_shares_until_touched_and_never_leaks() -> None:
    s = State("s", pos={"a": "table", "b": "a"}, clear={"a": False, "b": True})
    c = s.copy()
    assert c == s
    assert str(c) == "<State s_copy>"
    c.pos["a"] = "hand"
    assert s.pos["a"] == "table"
    s.clear["b"] = False
    assert c.clear["b"] is True
    assert c != s


def test_nested_values_are_deep_copied() -> None:
    s = State("s", bag={"alice": ["key"]})
    c = s.copy()
    c.bag["alice"].append("coin")
    assert s.bag == {"alice": ["key"]}
    flat = State("f", pos={"a": 1})
    c2 = flat.copy()
    c2.pos["a"] = ["now", "nested"]  # a flat variable turning nested
    c3 = c2.copy()
    c3.pos["a"].append("more")
    assert c2.pos["a"] == ["now", "nested"]


def test_untouched_variables_are_not_copied() -> None:
    big = {f"b{i}": "table" for i in range(1000)}
    s = State("s", pos=big, holding={"hand": False})
    c = s.copy()
    c.holding["hand"] = "b1"
    assert "pos" not in vars(c)  # never materialised in the copy


def test_triples_are_views_of_the_variables() -> None:
    s = State("s", pos={"a": "b"})
    assert s.has_fact("pos", "a", "b")
    s.set_fact("color", "a", "red")
    assert s.color == {"a": "red"}
    assert s.get_fact("color", "a") == "red"
    assert s.get_fact("color", "z", "none") == "none"
    assert sorted(s.facts()) == [("color", "a", "red"), ("pos", "a", "b")]
    assert s.match(obj="red") == [("color", "a", "red")]
    assert s.match(predicate="pos", subject="a") == [("pos", "a", "b")]
    s.remove_fact("pos", "a")
    assert s.pos == {}
    s.flag = True
    with pytest.raises(TypeError):
        s.set_fact("flag", "x", 1)


def test_delete_and_display(capsys: pytest.CaptureFixture[str]) -> None:
    s = State("s", a={"x": 1}, b=2)
    c = s.copy()
    del c.a
    assert c.state_vars() == ["b"]
    assert s.a == {"x": 1}
    with pytest.raises(AttributeError):
        del c.a
    c.display("heading")
    assert "heading" in capsys.readouterr().out


def test_goals_not_achieved() -> None:
    s = State("s", pos={"a": "table", "b": "a"})
    g = Multigoal("g", pos={"a": "table", "b": "table"})
    assert goals_not_achieved(s, g) == {"pos": {"b": "table"}}
    with pytest.raises(AttributeError, match="clear"):
        goals_not_achieved(s, Multigoal("g", clear={"a": True}))


keys = st.sampled_from(["a", "b", "c", "d"])
atoms = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"]), st.none(), st.booleans())
values = st.one_of(atoms, st.lists(atoms, max_size=2))
ops = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["set", "del", "copy", "nested"]), keys, values),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_copy_on_write_never_leaks_between_copies(
    program: list[tuple[int, str, str, object]],
) -> None:
    """Random writes to random copies: every state behaves like its own deep copy."""
    import copy

    states = [State("s0", v={"a": 1}, w={"b": "x"})]
    models = [{"v": {"a": 1}, "w": {"b": "x"}}]
    for which, op, key, value in program:
        i = which % len(states)
        var = "v" if key in "ab" else "w"
        if op == "copy":
            states.append(states[i].copy())
            models.append(copy.deepcopy(models[i]))
        elif op == "set":
            getattr(states[i], var)[key] = value
            models[i][var][key] = copy.deepcopy(value)
        elif op == "del":
            getattr(states[i], var).pop(key, None)
            models[i][var].pop(key, None)
        elif isinstance(getattr(states[i], var).get(key), list):
            getattr(states[i], var)[key].append(0)
            models[i][var][key].append(0)
        for s, m in zip(states, models, strict=True):
            assert s.variables() == m


read_ops = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.sampled_from(["read", "set", "del", "copy", "nested", "assign", "delvar", "pickle"]),
        keys,
        values,
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(read_ops)
def test_interleaved_reads_writes_and_copies_never_leak(
    program: list[tuple[int, str, str, object]],
) -> None:
    """Reads, writes, whole-variable assignments and deletions, copies and pickle round
    trips interleaved on many copies: every state behaves like its own deep copy."""
    import copy
    import pickle

    states = [State("s0", v={"a": 1, "b": ["x"]}, w={"c": "x"}, n=3)]
    models: list[dict[str, object]] = [{"v": {"a": 1, "b": ["x"]}, "w": {"c": "x"}, "n": 3}]
    kept = []  # references read before a copy: the documented stale-reference caveat
    for which, op, key, value in program:
        i = which % len(states)
        s, m = states[i], models[i]
        var = "v" if key in "ab" else "w"
        if op == "delvar":
            if var in m:
                delattr(s, var)
                del m[var]
            continue
        if var not in m:
            setattr(s, var, {})
            m[var] = {}
        binding, model = getattr(s, var), m[var]
        assert isinstance(model, dict)
        if op == "read":
            assert binding.get(key) == model.get(key)
            kept.append(binding)
        elif op == "copy":
            states.append(s.copy())
            models.append(copy.deepcopy(m))
        elif op == "set":
            binding[key] = value
            model[key] = copy.deepcopy(value)
        elif op == "del":
            binding.pop(key, None)
            model.pop(key, None)
        elif op == "assign":
            setattr(s, var, {key: copy.deepcopy(value)})
            m[var] = {key: copy.deepcopy(value)}
        elif op == "pickle":
            states[i] = pickle.loads(pickle.dumps(s))
        elif isinstance(binding.get(key), list):
            binding[key].append(0)
            model[key].append(0)
        for s2, m2 in zip(states, models, strict=True):
            assert isinstance(s2, State)
            assert s2.variables() == m2
            assert s2 == State("other", **m2)


def test_states_pickled_together_stay_independent() -> None:
    import pickle

    s = State("s", pos={"a": "table"}, bag={"k": ["x"]})
    c = s.copy()  # both share one snapshot, neither owns a variable yet
    s2, c2 = pickle.loads(pickle.dumps([s, c]))
    assert s2 == s
    assert c2 == c
    assert str(c2) == "<State s_copy>"
    c2.pos["a"] = "hand"
    c2.bag["k"].append("y")
    assert s2.pos == {"a": "table"}
    assert s2.bag == {"k": ["x"]}
    assert c2.pos == {"a": "hand"}
    assert c2.bag == {"k": ["x", "y"]}
