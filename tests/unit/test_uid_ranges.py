"""Lab hosts' uid ranges (webapp/labhost/records.py): claimed machine-wide, so two servers never share one,
but each server's cap (LABNB_MAX_LAB_HOSTS) counts its own lab hosts only (issue 29, item 3). No lab host:
the claims are files, here in the test's own dirs."""
from __future__ import annotations

import pytest

from webapp.labhost import records
from webapp.labhost.errors import CannotMake, LabHostError

BASE = 200000


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """The machine-wide claims in a dir of the test's, and an /etc/subuid giving root ``ranges`` from BASE."""
    monkeypatch.setattr(records, "UIDS", str(tmp_path / "uids"))

    def subuid(ranges: int) -> str:
        path = tmp_path / "subuid"
        path.write_text(f"someone:100000:65536\nroot:{BASE}:{ranges * records.RANGE}\n")
        return str(path)
    return subuid


def reserve(state_dir, n: int, most: int, subuid: str) -> list[int]:
    return [records.reserve_slot(str(state_dir), f"lh-{i}", most, BASE, subuid) for i in range(n)]


def test_a_server_with_a_cap_of_two_gets_two_beside_another_that_holds_the_first_ranges(tmp_path, machine):
    subuid = machine(8)
    assert reserve(tmp_path / "a", 4, 6, subuid) == [0, 1, 2, 3]
    assert reserve(tmp_path / "b", 2, 2, subuid) == [4, 5]
    with pytest.raises(LabHostError, match=r"this server's 2 lab hosts \(LABNB_MAX_LAB_HOSTS, state dir .*/b\) "
                                           r"are all in use.*raise LABNB_MAX_LAB_HOSTS"):
        reserve(tmp_path / "b", 1, 2, subuid)
    records.release_slot(str(tmp_path / "b"), 4, BASE + 4 * records.RANGE)
    assert reserve(tmp_path / "b", 1, 2, subuid) == [4]


def test_when_the_machine_s_ranges_are_all_claimed_the_message_says_so_and_by_whom(tmp_path, machine):
    subuid = machine(6)
    reserve(tmp_path / "a", 4, 4, subuid)
    reserve(tmp_path / "b", 2, 2, subuid)
    with pytest.raises(LabHostError) as e:
        reserve(tmp_path / "c", 1, 2, subuid)
    message = str(e.value)
    assert f"all 6 uid ranges of this machine ({subuid} root:{BASE}:{6 * records.RANGE}" in message, message
    assert f"4 of {tmp_path / 'a'}, 2 of {tmp_path / 'b'}" in message and "this server's" not in message, message


def test_the_machine_s_ranges_start_at_the_uid_base_and_end_with_root_s_entry(tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text(f"root:{BASE}:{64 * records.RANGE}\n")
    assert records.machine_ranges(BASE + 8 * records.RANGE, str(subuid))[0] == 56
    assert records.machine_ranges(BASE, str(subuid)) == (64, f"{subuid} root:{BASE}:{64 * records.RANGE}, from "
                                                             f"LABNB_UID_BASE={BASE}")
    ranges, why = records.machine_ranges(BASE, str(tmp_path / "none"))
    assert ranges == records.RANGES and "no entry of root's" in why


def test_a_server_allowed_more_lab_hosts_than_the_machine_has_ranges_is_refused_past_them(tmp_path, machine):
    """Before issue 30 a server's LABNB_MAX_LAB_HOSTS reached past root's entry: its lab hosts took ids that
    useradd may give another user's containers."""
    subuid = machine(2)
    assert reserve(tmp_path / "a", 2, 5, subuid) == [0, 1]
    with pytest.raises(CannotMake) as e:
        reserve(tmp_path / "a", 1, 5, subuid)
    assert str(e.value).endswith(
        "This server may have 5 lab hosts (LABNB_MAX_LAB_HOSTS), more than the 2 uid ranges of the machine: run "
        "`labnb lab-hosts ranges --write` (scripts/setup.sh runs it), which gives root as many ranges as this "
        "machine's memory holds in /etc/subuid and /etc/subgid, or set LABNB_MAX_LAB_HOSTS to at most 2"), e.value
    assert str(records.refusal(str(tmp_path / "a"), 5, BASE, subuid)) == str(e.value)
    records.release_slot(str(tmp_path / "a"), 1, BASE + records.RANGE)
    assert records.refusal(str(tmp_path / "a"), 5, BASE, subuid) is None
    assert reserve(tmp_path / "a", 1, 5, subuid) == [1]


def test_the_ranges_stop_before_another_user_s_entry_and_below_uid_2_to_the_32(tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text(f"root:{BASE}:{64 * records.RANGE}\npodman:{BASE + 10 * records.RANGE + 5}:65536\n")
    assert records.machine_ranges(BASE, str(subuid)) == (10, f"{subuid} root:{BASE}:{64 * records.RANGE}, from "
                                                             f"LABNB_UID_BASE={BASE}, up to the entry podman:"
                                                             f"{BASE + 10 * records.RANGE + 5}:65536")
    last = 2 ** 32 - 1 - 3 * records.RANGE   # ranges 0 and 1 end below uid 2^32 - 1; range 2 would reach it
    assert records.machine_ranges(last, str(tmp_path / "none"))[0] == 2
    assert records.machine_ranges(2 ** 32 - records.RANGE, str(tmp_path / "none"))[0] == 0


def test_no_range_at_all_says_which_setting_to_change(tmp_path, machine):
    subuid = tmp_path / "subuid"
    subuid.write_text(f"someone:{BASE}:65536\n")
    with pytest.raises(CannotMake, match=r"no uid range for lab hosts .*up to the entry someone:200000:65536.*"
                                         r"Set LABNB_UID_BASE to the start of root's entry"):
        reserve(tmp_path / "a", 1, 2, str(subuid))
