"""Reading services from TOML: ``aria_actors.load_services``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aria_actors import (
    AriaError,
    ChildSpec,
    ConfigError,
    DynamicSupervisorSpec,
    Node,
    ServiceSpec,
    SupervisorRef,
    SupervisorSpec,
    load_services,
)

from .loader_actors import GetArgs, Idle, Ping, Worker

ACTORS = "tests.runtime.loader_actors"


def write(directory: Path, name: str, text: str) -> Path:
    file = directory / name
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file


def config_error(file: Path) -> ConfigError:
    """The ConfigError that loading ``file`` raises; its message must name the file."""
    with pytest.raises(ConfigError) as caught:
        load_services(file)
    assert str(file) in str(caught.value)
    return caught.value


# ======================================================================================
# A full, valid file
# ======================================================================================

FULL = f"""
    [service]
    name = "aria_test"
    requires = ["aria_security"]
    restart = "transient"

    [supervisor]
    strategy = "rest_for_one"
    max_restarts = 4
    max_seconds = 10

    [[children]]
    id = "store"
    actor = "{ACTORS}:Worker"
    name = "aria_test.store"
    restart = "permanent"
    shutdown = 2.5
    mailbox_size = 16
    [children.args]
    greeting = "hi"
    level = 3

    [[children]]
    id = "inner"
    name = "aria_test.inner"
    shutdown = "infinity"
    [children.supervisor]
    strategy = "one_for_all"
    max_restarts = 1
    max_seconds = 2.0
    [[children.supervisor.children]]
    id = "leaf"
    actor = "{ACTORS}:Idle"
    name = "aria_test.leaf"
    restart = "temporary"
    shutdown = "brutal_kill"
    [[children.supervisor.children]]
    id = "twin"
    actor = "{ACTORS}:Worker"
    restart = "transient"
    shutdown = 1

    [[children]]
    id = "pool"
    restart = "transient"
    [children.dynamic_supervisor]
    max_children = 8
    max_restarts = 5
    max_seconds = 1
"""

SECURITY = """
    [service]
    name = "aria_security"
"""

EXPECTED = ServiceSpec(
    name="aria_test",
    requires=("aria_security",),
    restart="transient",
    supervisor=SupervisorSpec(
        strategy="rest_for_one",
        max_restarts=4,
        max_seconds=10.0,
        children=(
            ChildSpec(
                id="store",
                start=Worker,
                args={"greeting": "hi", "level": 3},
                name="aria_test.store",
                restart="permanent",
                shutdown=2.5,
                mailbox_size=16,
            ),
            ChildSpec(
                id="inner",
                name="aria_test.inner",
                shutdown="infinity",
                start=SupervisorSpec(
                    strategy="one_for_all",
                    max_restarts=1,
                    max_seconds=2.0,
                    children=(
                        ChildSpec(
                            id="leaf",
                            start=Idle,
                            name="aria_test.leaf",
                            restart="temporary",
                            shutdown="brutal_kill",
                        ),
                        ChildSpec(id="twin", start=Worker, restart="transient", shutdown=1.0),
                    ),
                ),
            ),
            ChildSpec(
                id="pool",
                restart="transient",
                start=DynamicSupervisorSpec(max_children=8, max_restarts=5, max_seconds=1.0),
            ),
        ),
    ),
)


def test_the_loader_actors_module_is_importable_by_name() -> None:
    import importlib

    module = importlib.import_module(ACTORS)
    assert module.Worker is Worker


def test_a_full_file_loads_into_the_expected_specs(tmp_path: Path) -> None:
    file = write(tmp_path, "test.toml", FULL)
    assert load_services(file) == [EXPECTED]


def test_loaded_values_have_the_spec_types(tmp_path: Path) -> None:
    [spec] = load_services(write(tmp_path, "test.toml", FULL))
    assert isinstance(spec.requires, tuple)
    assert isinstance(spec.supervisor.max_seconds, float)
    store, inner, pool = spec.supervisor.children
    assert store.start is Worker
    assert not store.is_supervisor
    assert store.effective_shutdown == 2.5
    assert isinstance(inner.start, SupervisorSpec)
    assert inner.is_supervisor
    assert inner.start.children[0].effective_shutdown == "brutal_kill"
    assert inner.start.children[1].effective_shutdown == 1.0
    assert isinstance(pool.start, DynamicSupervisorSpec)
    assert pool.effective_shutdown == "infinity"
    assert dict(pool.args) == {}


def test_defaults_apply_to_omitted_keys(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "minimal.toml",
        f"""
        [service]
        name = "minimal"

        [[children]]
        id = "w"
        actor = "{ACTORS}:Idle"
        """,
    )
    [spec] = load_services(file)
    assert spec == ServiceSpec(
        name="minimal", supervisor=SupervisorSpec(children=[ChildSpec(id="w", start=Idle)])
    )
    assert spec.restart == "permanent"
    assert spec.requires == ()
    assert spec.supervisor.strategy == "one_for_one"
    child = spec.supervisor.children[0]
    assert (child.restart, child.shutdown, child.mailbox_size, child.name) == (
        "permanent",
        None,
        None,
        None,
    )


def test_a_service_with_no_children_loads(tmp_path: Path) -> None:
    [spec] = load_services(write(tmp_path, "bare.toml", '[service]\nname = "bare"\n'))
    assert spec == ServiceSpec(name="bare", supervisor=SupervisorSpec())


def test_a_directory_loads_every_toml_file_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "storage.toml", FULL)
    write(tmp_path, "security.toml", SECURITY)
    write(tmp_path, "notes.md", "not a service")
    write(tmp_path, "backup.toml.bak", "[service\n")
    services = load_services(tmp_path)
    assert [spec.name for spec in services] == ["aria_security", "aria_test"]
    assert services[1] == EXPECTED


def test_a_path_given_as_a_string_works(tmp_path: Path) -> None:
    write(tmp_path, "security.toml", SECURITY)
    assert [spec.name for spec in load_services(str(tmp_path))] == ["aria_security"]


def test_an_empty_directory_gives_no_services(tmp_path: Path) -> None:
    assert load_services(tmp_path) == []


def test_the_shipped_supervisors_directory_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    services = load_services(root / "supervisors")
    assert all(isinstance(spec, ServiceSpec) for spec in services)


async def test_a_loaded_tree_boots_on_a_node(node: Node, tmp_path: Path) -> None:
    write(tmp_path, "storage.toml", FULL)
    write(tmp_path, "security.toml", SECURITY)
    started = await node.boot(load_services(tmp_path))
    assert started == ["aria_security", "aria_test"]

    top = node.whereis("aria_test")
    assert isinstance(top, SupervisorRef)
    children = await top.which_children()
    assert [(c.id, c.type, c.restart) for c in children] == [
        ("store", "worker", "permanent"),
        ("inner", "supervisor", "permanent"),
        ("pool", "supervisor", "transient"),
    ]

    store = node.whereis("aria_test.store")
    assert store is not None
    assert await store.call(Ping()) == "hi"
    assert await store.call(GetArgs()) == ("hi", 3)
    assert store._proc.mailbox_size == 16

    inner = node.whereis("aria_test.inner")
    assert isinstance(inner, SupervisorRef)
    assert [c.id for c in await inner.which_children()] == ["leaf", "twin"]
    leaf = node.whereis("aria_test.leaf")
    assert leaf is not None
    assert leaf.is_alive()

    pool = children[2].actor
    assert isinstance(pool, SupervisorRef)
    worker = await pool.start_child(ChildSpec(id="w1", start=Worker, args={"greeting": "yo"}))
    assert await worker.call(Ping()) == "yo"
    assert (await pool.count_children()).active == 1


# ======================================================================================
# Errors: every one a ConfigError naming the file and the key
# ======================================================================================


def child(body: str, *, actor: str | None = "Worker", child_id: str = "w") -> str:
    """A service file with one ``[[children]]`` entry."""
    lines = ["[service]", 'name = "svc"', "", "[[children]]", f'id = "{child_id}"']
    if actor is not None:
        lines.append(f'actor = "{ACTORS}:{actor}"')
    return "\n".join(lines) + "\n" + textwrap.dedent(body)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param('[service\nname = "x"\n', ["invalid TOML", "line 1"], id="invalid-toml"),
        pytest.param(
            'name = "x"\n[service]\nname = "y"\nname = "z"\n', ["invalid TOML"], id="duplicate-key"
        ),
        pytest.param(
            "[supervisor]\nmax_restarts = 1\n", ["service: missing"], id="missing-service"
        ),
        pytest.param("[service]\nrequires = []\n", ["service.name: missing"], id="missing-name"),
        pytest.param(
            '[service]\nname = "svc"\n[servise]\nname = "x"\n',
            ["servise: unknown key"],
            id="unknown-table",
        ),
        pytest.param(
            '[service]\nname = "svc"\nrequire = ["a"]\n',
            ["service.require: unknown key"],
            id="unknown-service-key",
        ),
        pytest.param(
            child('restrat = "permanent"\n'),
            ["children[0].restrat: unknown key"],
            id="unknown-child-key",
        ),
        pytest.param(
            child("[children.args]\nx = 1\n[children.supervisor]\nstrategi = 'one_for_one'\n"),
            ["children[0].supervisor.strategi: unknown key"],
            id="unknown-nested-key",
        ),
        pytest.param(
            '[service]\nname = "svc"\nrequires = "aria_security"\n',
            ["service.requires: expected an array, got a string"],
            id="requires-not-a-list",
        ),
        pytest.param(
            "[service]\nname = 7\n",
            ["service.name: expected a string, got an integer"],
            id="name-not-a-string",
        ),
        pytest.param(
            '[service]\nname = "svc"\n[supervisor]\nmax_restarts = "3"\n',
            ["supervisor.max_restarts: expected an integer, got a string"],
            id="max-restarts-string",
        ),
        pytest.param(
            child('mailbox_size = "big"\n'),
            ["children[0].mailbox_size: expected an integer"],
            id="mailbox-size-string",
        ),
        pytest.param(
            child("args = [1, 2]\n"),
            ["children[0].args: expected a table, got an array"],
            id="args-not-table",
        ),
        pytest.param(
            f'[service]\nname = "svc"\n[[children]]\nid = 5\nactor = "{ACTORS}:Idle"\n',
            ["children[0].id: expected a string, got an integer"],
            id="id-not-a-string",
        ),
        pytest.param(
            child("", child_id="w").replace('id = "w"\n', ""),
            ["children[0].id: missing"],
            id="missing-id",
        ),
        pytest.param(
            '[service]\nname = "svc"\nrestart = "sometimes"\n',
            ["service.restart: invalid value 'sometimes'", "permanent, transient"],
            id="bad-service-restart",
        ),
        pytest.param(
            '[service]\nname = "svc"\n[supervisor]\nstrategy = "all_for_one"\n',
            ["supervisor.strategy: invalid value 'all_for_one'", "one_for_one"],
            id="bad-strategy",
        ),
        pytest.param(
            child('shutdown = "never"\n'),
            ["children[0].shutdown: invalid value 'never'", "'brutal_kill'"],
            id="shutdown-never",
        ),
        pytest.param(
            child("shutdown = -1\n"), ["children[0]", "shutdown", "-1"], id="shutdown-negative"
        ),
        pytest.param(
            child("mailbox_size = 0\n"), ["children[0]", "mailbox_size"], id="mailbox-size-zero"
        ),
        pytest.param(
            '[service]\nname = "svc"\n[supervisor]\nmax_restarts = -1\n',
            ["supervisor", "max_restarts", "-1"],
            id="negative-max-restarts",
        ),
        pytest.param(
            '[service]\nname = "svc"\n[supervisor]\nmax_seconds = 0\n',
            ["supervisor", "max_seconds"],
            id="zero-max-seconds",
        ),
        pytest.param(
            child("[children.dynamic_supervisor]\nmax_restarts = -2\n", actor=None),
            ["children[0].dynamic_supervisor", "max_restarts", "-2"],
            id="dynamic-negative-max-restarts",
        ),
        pytest.param(
            child("[children.dynamic_supervisor]\nmax_children = -1\n", actor=None),
            ["children[0].dynamic_supervisor", "max_children", "-1"],
            id="dynamic-negative-max-children",
        ),
        pytest.param(
            child("[children.supervisor]\nmax_restarts = -1\n", actor=None),
            ["children[0].supervisor", "max_restarts", "-1"],
            id="nested-negative-max-restarts",
        ),
        pytest.param(
            child("[children.args]\nx = 1\n[children.supervisor]\n", actor=None),
            ["children[0]", "args are for workers"],
            id="args-for-a-supervisor",
        ),
        pytest.param('[service]\nname = ""\n', ["service", "name"], id="empty-service-name"),
        pytest.param(
            '[service]\nname = "svc"\nrequires = [""]\n',
            ["service", "requires"],
            id="empty-require",
        ),
    ],
)
def test_a_malformed_file_names_the_file_and_the_key(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    error = config_error(write(tmp_path, "svc.toml", text))
    for fragment in fragments:
        assert fragment in str(error)


def test_a_bad_child_restart_names_its_index(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[children]]
        id = "first"
        actor = "{ACTORS}:Idle"

        [[children]]
        id = "second"
        actor = "{ACTORS}:Idle"
        restart = "always"
        """,
    )
    message = str(config_error(file))
    assert f"{file}: children[1].restart: " in message
    assert "'always'" in message


@pytest.mark.parametrize(
    ("actor", "fragments"),
    [
        pytest.param(
            f"{ACTORS}.Worker", ["expected 'package.module:ClassName'", "Worker"], id="no-colon"
        ),
        pytest.param(f"{ACTORS}:", ["expected 'package.module:ClassName'"], id="no-class"),
        pytest.param(":Worker", ["expected 'package.module:ClassName'"], id="no-module"),
        pytest.param(
            "tests.runtime.no_such_module:Worker",
            ["cannot import 'tests.runtime.no_such_module'", "ModuleNotFoundError"],
            id="missing-module",
        ),
        pytest.param(f"{ACTORS}:Missing", [f"'{ACTORS}' has no 'Missing'"], id="missing-attribute"),
        pytest.param(
            f"{ACTORS}:Worker.nested.deeper", ["has no 'Worker.nested.deeper'"], id="missing-path"
        ),
        pytest.param(f"{ACTORS}:NotAnActor", ["is not an Actor subclass"], id="class-not-an-actor"),
        pytest.param(f"{ACTORS}:not_a_class", ["is not an Actor subclass"], id="function"),
        pytest.param(f"{ACTORS}:NOT_A_TYPE", ["is not an Actor subclass"], id="constant"),
    ],
)
def test_a_bad_actor_names_the_key(tmp_path: Path, actor: str, fragments: list[str]) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[children]]
        id = "first"
        actor = "{ACTORS}:Idle"

        [[children]]
        id = "second"
        actor = "{actor}"
        """,
    )
    error = config_error(file)
    assert f"{file}: children[1].actor: " in str(error)
    for fragment in fragments:
        assert fragment in str(error)


def test_an_import_error_is_chained(tmp_path: Path) -> None:
    file = write(tmp_path, "svc.toml", child("", actor=None) + 'actor = "no_such_pkg_x:A"\n')
    error = config_error(file)
    assert isinstance(error.__cause__, ImportError)


def test_a_bad_actor_deep_in_a_nested_supervisor_names_the_full_key(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[children]]
        id = "outer"
        [children.supervisor]
        [[children.supervisor.children]]
        id = "ok"
        actor = "{ACTORS}:Idle"
        [[children.supervisor.children]]
        id = "middle"
        [children.supervisor.children.supervisor]
        [[children.supervisor.children.supervisor.children]]
        id = "bad"
        actor = "{ACTORS}:NotAnActor"
        """,
    )
    message = str(config_error(file))
    assert "children[0].supervisor.children[1].supervisor.children[0].actor" in message


@pytest.mark.parametrize(
    ("body", "found"),
    [
        pytest.param("", "none of them", id="none"),
        pytest.param(
            f'actor = "{ACTORS}:Idle"\n[children.supervisor]\n',
            "actor and supervisor",
            id="actor-and-supervisor",
        ),
        pytest.param(
            f'actor = "{ACTORS}:Idle"\n[children.dynamic_supervisor]\n',
            "actor and dynamic_supervisor",
            id="actor-and-dynamic",
        ),
        pytest.param(
            "[children.supervisor]\n[children.dynamic_supervisor]\n",
            "supervisor and dynamic_supervisor",
            id="supervisor-and-dynamic",
        ),
    ],
)
def test_a_child_must_be_exactly_one_kind(tmp_path: Path, body: str, found: str) -> None:
    file = write(tmp_path, "svc.toml", child(body, actor=None))
    message = str(config_error(file))
    assert f"{file}: children[0]: " in message
    assert "exactly one of actor, supervisor, dynamic_supervisor" in message
    assert f"found {found}" in message


def test_duplicate_child_ids_are_refused(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[children]]
        id = "twin"
        actor = "{ACTORS}:Idle"

        [[children]]
        id = "twin"
        actor = "{ACTORS}:Worker"
        """,
    )
    message = str(config_error(file))
    assert "children[1].id: duplicate child id 'twin' (also at children[0])" in message


def test_duplicate_child_ids_in_a_nested_supervisor_name_it(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[children]]
        id = "inner"
        [children.supervisor]
        [[children.supervisor.children]]
        id = "twin"
        actor = "{ACTORS}:Idle"
        [[children.supervisor.children]]
        id = "twin"
        actor = "{ACTORS}:Idle"
        """,
    )
    message = str(config_error(file))
    assert "children[0].supervisor" in message
    assert "duplicate child id 'twin'" in message


def test_a_service_defined_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", '[service]\nname = "aria_data"\n')
    second = write(tmp_path, "b.toml", '[service]\nname = "aria_data"\n')
    with pytest.raises(ConfigError) as caught:
        load_services(tmp_path)
    message = str(caught.value)
    assert str(first) in message
    assert str(second) in message
    assert "service.name" in message
    assert "'aria_data'" in message


def test_a_nonexistent_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as caught:
        load_services(missing)
    assert str(missing) in str(caught.value)
    assert "no such file or directory" in str(caught.value)


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "latin1.toml"
    file.write_bytes(b'[service]\nname = "caf\xe9"\n')
    assert "UTF-8" in str(config_error(file))


def test_an_error_in_one_file_of_a_directory_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", SECURITY)
    bad = write(tmp_path, "b.toml", child('restart = "always"\n'))
    with pytest.raises(ConfigError) as caught:
        load_services(tmp_path)
    assert str(bad) in str(caught.value)
    assert "children[0].restart" in str(caught.value)


def test_config_error_is_an_aria_error() -> None:
    assert issubclass(ConfigError, AriaError)


def test_a_validation_error_is_chained(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, "svc.toml", child('restrat = "x"\n')))
    assert error.__cause__ is not None


# -- children listed under [supervisor] ----------------------------------------------------


def test_children_under_the_supervisor_table_load_too(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [supervisor]
        strategy = "one_for_all"
        [[supervisor.children]]
        id = "a"
        actor = "{ACTORS}:Idle"
        """,
    )
    [spec] = load_services(file)
    assert spec.supervisor == SupervisorSpec(
        strategy="one_for_all", children=[ChildSpec(id="a", start=Idle)]
    )


def test_an_error_under_the_supervisor_table_names_its_real_key(tmp_path: Path) -> None:
    """``[[supervisor.children]]`` entries are reported under the key written in the file."""
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[supervisor.children]]
        id = "a"
        actor = "{ACTORS}:NotAnActor"
        """,
    )
    assert f"{file}: supervisor.children[0].actor: " in str(config_error(file))


def test_an_error_in_children_next_to_supervisor_children_names_the_right_index(
    tmp_path: Path,
) -> None:
    """With both ``[[supervisor.children]]`` and ``[[children]]``, ``children[0]`` is the
    first ``[[children]]`` entry, as msgspec reports it for a type error."""
    file = write(
        tmp_path,
        "svc.toml",
        f"""
        [service]
        name = "svc"

        [[supervisor.children]]
        id = "a"
        actor = "{ACTORS}:Idle"

        [[children]]
        id = "b"
        actor = "{ACTORS}:NotAnActor"
        """,
    )
    assert f"{file}: children[0].actor: " in str(config_error(file))
