"""A workshop's room is sized to the machine (issue 29, item 2): a capacity the operator did not give is as
many places as there are lab hosts for, and the server says what it chose and why; only a value the
operator gave that cannot fit is an error. The machine's memory is the test's, not this machine's."""
from __future__ import annotations

import pytest

from webapp import app as app_module
from webapp.app import resolve
from webapp.config import Settings
from webapp.errors import ConfigError
from webapp.guard.limits import fit_memory
from webapp.workshop.manager import size_for_room

GIB = 1024


def room(total_mb: int | None, given: frozenset[str] = frozenset(), **kw) -> tuple[Settings, str]:
    """The room's settings as resolve makes them for an isolated backend on a machine of ``total_mb``."""
    settings, note = size_for_room(Settings(workshop=1, **kw), given, total_mb)
    return fit_memory(settings, True, total_mb), note


def test_a_24_gib_machine_runs_the_default_workshop_with_what_fits_and_says_why():
    settings, note = room(24 * GIB)
    assert (settings.capacity, settings.max_lab_hosts, settings.pool_size) == (21, 23, 21)
    assert note.startswith("room capacity 21: 23 lab hosts of 1024 MiB (LABNB_MEMORY_MB) fit this machine's "
                           "24576 MiB beside the server's 1024 MiB"), note
    assert "2 of them kept for the instructor's own and one being reset" in note
    assert "set --capacity (LABNB_CAPACITY) to choose" in note


def test_a_machine_that_fits_the_default_keeps_it():
    settings, note = room(64 * GIB)
    assert (settings.capacity, settings.max_lab_hosts) == (30, 32)
    assert note.startswith("room capacity 30, the default")


@pytest.mark.parametrize("total_mb, capacity, lab_hosts", [(3 * GIB, 1, 2), (4 * GIB, 1, 3), (6 * GIB, 3, 5)])
def test_a_small_machine_gets_at_least_one_place(total_mb, capacity, lab_hosts):
    settings, _ = room(total_mb)
    assert (settings.capacity, settings.max_lab_hosts) == (capacity, lab_hosts)


def test_a_capacity_given_is_kept_with_what_headroom_fits_and_refused_when_it_cannot_fit():
    settings, note = room(24 * GIB, frozenset({"capacity"}), capacity=22)
    assert (settings.capacity, settings.max_lab_hosts) == (22, 23) and note == "room capacity 22, as set"
    with pytest.raises(ConfigError, match=r"a room of 30 places \(--capacity, LABNB_CAPACITY\) needs as many lab "
                                          r"hosts, but 23 lab hosts of 1024 MiB .* fit this machine's 24576 MiB.*"
                                          r"Lower the capacity to at most 23, or LABNB_MEMORY_MB to at most 785"):
        room(24 * GIB, frozenset({"capacity"}), capacity=30)


def test_lab_hosts_given_bound_the_places_too():
    settings, note = room(64 * GIB, frozenset({"max_lab_hosts"}), max_lab_hosts=10)
    assert (settings.capacity, settings.max_lab_hosts) == (8, 10)
    assert note.startswith("room capacity 8: LABNB_MAX_LAB_HOSTS is 10"), note
    with pytest.raises(ConfigError, match="LABNB_MAX_LAB_HOSTS"):   # given, and more than the memory holds
        room(24 * GIB, frozenset({"max_lab_hosts"}), max_lab_hosts=30)


def test_a_clusters_node_holds_what_fits_its_machine_of_a_room_that_spans_the_nodes():
    """A room of 150 over nodes of 24 GiB: no node need hold it whole (HAProxy places learners by what each
    node's agent-check says it can take, the room's queue holds the rest); each node holds what fits."""
    settings, note = room(24 * GIB, frozenset({"capacity"}), capacity=150, node="a")
    assert (settings.capacity, settings.max_lab_hosts, settings.pool_size) == (150, 23, 23)
    assert note == ("room capacity 150 over the cluster's nodes; this node holds at most 23 lab hosts: 23 lab hosts "
                    "of 1024 MiB (LABNB_MEMORY_MB) fit this machine's 24576 MiB beside the server's 1024 MiB "
                    "(LABNB_SERVER_MEMORY_MB)")
    settings, note = room(24 * GIB, frozenset({"max_lab_hosts", "pool_size"}), max_lab_hosts=4, pool_size=1,
                          node="a")
    assert (settings.capacity, settings.max_lab_hosts, settings.pool_size) == (30, 4, 1)
    assert note.endswith("this node holds at most 4 lab hosts: LABNB_MAX_LAB_HOSTS is 4")


def test_the_plain_backend_is_not_sized_by_memory():
    settings, note = size_for_room(Settings(workshop=1), frozenset(), None)
    assert (settings.capacity, settings.max_lab_hosts) == (30, 32) and "the default" in note


def test_resolve_sizes_the_room_to_the_machine_and_keeps_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "mem_total_mb", lambda: 24 * GIB)
    resolved = resolve(Settings(state_dir=str(tmp_path), workshop=1, workshop_labs="01-network-modes"), frozenset())
    assert (resolved.capacity, resolved.max_lab_hosts) == (21, 23)
    assert resolved.sizing.startswith("room capacity 21: 23 lab hosts")
    # every built-in lab, the two-host one among them: a place is a set of two
    resolved = resolve(Settings(state_dir=str(tmp_path), workshop=1), frozenset())
    assert (resolved.capacity, resolved.max_lab_hosts, resolved.pool_size) == (9, 22, 18)


def test_a_room_whose_lab_has_two_hosts_counts_places_in_sets_of_two():
    """Each learner of a two-host lab holds two lab hosts: the places are as many sets as fit, the warm pool
    holds every place's set, and the headroom is in sets too."""
    settings, note = size_for_room(Settings(workshop=1), frozenset(), 24 * GIB, hosts=2)
    assert (settings.capacity, settings.max_lab_hosts, settings.pool_size) == (9, 22, 18)
    assert "11 learners' sets of 2" in note, note


def test_a_two_host_room_given_too_few_lab_hosts_says_how_many_it_needs():
    with pytest.raises(ConfigError) as e:
        size_for_room(Settings(workshop=1, capacity=10, max_lab_hosts=12), frozenset({"capacity", "max_lab_hosts"}),
                      None, hosts=2)
    assert "needs 20 lab hosts, but LABNB_MAX_LAB_HOSTS is 12" in str(e.value)


def test_a_two_host_room_that_does_not_fit_names_the_memory_its_sets_would_fit_in():
    with pytest.raises(ConfigError) as e:
        size_for_room(Settings(workshop=1, capacity=15), frozenset({"capacity"}), 24 * GIB, hosts=2)
    said = str(e.value)
    assert "needs 30 lab hosts" in said and "at most 11" in said, said
    assert f"LABNB_MEMORY_MB to at most {(24 * GIB - 1024) // 30}" in said, said


def test_resolve_sizes_a_workshop_by_the_most_hosts_a_served_lab_names(tmp_path):
    (tmp_path / "two.md").write_text("---\ntitle: Two\nhosts: [node1, node2]\n---\n# Two\n\n## A {#a}\n\n```sh\ntrue\n```\n")
    settings = resolve(Settings(workshop="two", labs_dir=str(tmp_path), capacity=3, state_dir=str(tmp_path / "s")),
                       frozenset({"capacity", "labs_dir", "workshop", "state_dir"}))
    assert settings.pool_size == 6 and settings.max_lab_hosts >= 6
