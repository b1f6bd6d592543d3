"""How many lab hosts' uid ranges a machine reserves (issue 30, "A node as big as its machine"): the memory
rule sizes root's entry in /etc/subuid and /etc/subgid (``limits.uid_ranges_wanted``), ``labnb lab-hosts
ranges --write`` writes it (scripts/setup.sh runs it) over no other entry and never smaller, and ``labnb
doctor`` warns when the ranges are fewer than the lab hosts the memory allows. Files of the test's own:
the machine's are never touched."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from webapp.commands import doctor
from webapp.commands.cli import main
from webapp.config import Settings
from webapp.guard import limits
from webapp.labhost import records, subids
from webapp.labhost.subids import RANGE

BASE = 200000
SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


def test_the_memory_rule_sizes_the_ranges_for_the_smallest_lab_host_beside_the_server():
    settings = Settings(server_memory_mb=1024)
    assert limits.uid_ranges_wanted(settings, 24105) == (24105 - 1024) // 64 == 360
    assert limits.uid_ranges_wanted(Settings(server_memory_mb=4096), 24105) == (24105 - 4096) // 64
    assert limits.uid_ranges_wanted(Settings(memory_mb=32), 24105) == (24105 - 1024) // 32   # smaller: its own
    assert limits.uid_ranges_wanted(settings, 4096) == subids.RANGES   # never fewer than setup gave before
    # whatever LABNB_MAX_LAB_HOSTS the memory rule lets a server start with, the ranges hold it
    most = limits.fit_memory(Settings(max_lab_hosts=10_000, memory_mb=64), False, 24105).max_lab_hosts
    assert most == limits.uid_ranges_wanted(settings, 24105)


def allot(path: Path, want: int, text: str | None = None, write: bool = True) -> subids.Allotment:
    if text is not None:
        path.write_text(text)
    return subids.allot(str(path), BASE, want, write)


def test_root_s_entry_grows_in_place_is_added_when_missing_and_a_larger_one_is_kept(tmp_path):
    f = tmp_path / "subuid"
    done = allot(f, 360, f"alice:100000:65536\nroot:{BASE}:{64 * RANGE}\n# a comment\n")
    assert (done.ranges, done.after, str(done.before), done.notes) == (360, f"root:{BASE}:{360 * RANGE}",
                                                                        f"root:{BASE}:{64 * RANGE}", ())
    assert f.read_text() == f"alice:100000:65536\nroot:{BASE}:{360 * RANGE}\n# a comment\n"
    assert not allot(f, 360).changed and not allot(f, 100).changed   # again: kept; a smaller want: kept
    assert f.read_text().count("root:") == 1
    done = allot(tmp_path / "new", 70)
    assert done.changed and done.before is None and (tmp_path / "new").read_text() == f"root:{BASE}:{70 * RANGE}\n"
    assert oct((tmp_path / "new").stat().st_mode & 0o777) == "0o644"
    # an entry of root's that starts below LABNB_UID_BASE grows from its own start
    done = allot(f, 10, f"root:100000:{BASE - 100000 + 2 * RANGE}\n")
    assert done.after == f"root:100000:{BASE - 100000 + 10 * RANGE}" and done.ranges == 10
    assert not allot(f, 10, write=False).changed


def test_it_never_reaches_over_another_entry_and_says_so(tmp_path):
    f = tmp_path / "subuid"
    # useradd gave a user the first free ids past root's 64 ranges, as it does
    other = f"podman:{BASE + 64 * RANGE}:65536"
    done = allot(f, 360, f"root:{BASE}:{64 * RANGE}\n{other}\n")
    assert not done.changed and done.ranges == 64
    assert done.notes == (f"360 ranges from LABNB_UID_BASE={BASE} would reach the entry {other} in {f}, so root "
                          f"gets 64: move that entry, or set LABNB_UID_BASE past it",)
    done = allot(f, 360, f"{other}\n")
    assert done.ranges == 64 and done.after == f"root:{BASE}:{64 * RANGE}"
    assert f.read_text() == f"{other}\nroot:{BASE}:{64 * RANGE}\n"
    # another entry of root's bounds it the same way
    assert allot(f, 360, f"root:{BASE}:{RANGE}\nroot:{BASE + 5 * RANGE}:{RANGE}\n").ranges == 5
    # an entry that overlaps root's already is said
    done = allot(f, 4, f"root:{BASE}:{8 * RANGE}\nbob:{BASE + 2 * RANGE}:10\n")
    assert not done.changed and done.notes[0].startswith(f"root's entry root:{BASE}:{8 * RANGE} overlaps the entry "
                                                         f"bob:{BASE + 2 * RANGE}:10")


def test_no_range_reaches_uid_2_to_the_32_minus_1(tmp_path):
    base = 2 ** 32 - 1 - 3 * RANGE
    done = subids.allot(str(tmp_path / "subuid"), base, 64, True)
    assert done.ranges == 2 and base + 2 * RANGE < 2 ** 32 - 1 and "uid 4294967295" in done.notes[0]
    assert subids.allot(str(tmp_path / "none"), 2 ** 32 - RANGE, 64, False).ranges == 0


@pytest.fixture
def machine(monkeypatch):
    """A machine of 24105 MiB (the test VM's), whatever this one has."""
    monkeypatch.setattr(limits, "mem_total_mb", lambda: 24105)


def ranges(tmp_path, *args: str, env: dict | None = None):
    files = [str(tmp_path / "subuid"), str(tmp_path / "subgid")]
    return CliRunner().invoke(main, ["lab-hosts", "ranges", *args, "--file", files[0], "--file", files[1]],
                              env={"LABNB_UID_BASE": str(BASE), "LABNB_SERVER_MEMORY_MB": "1024", **(env or {})})


def test_the_command_prints_the_count_and_writes_both_files(tmp_path, machine):
    (tmp_path / "subuid").write_text(f"root:{BASE}:{64 * RANGE}\n")
    r = ranges(tmp_path, "--count")
    assert (r.exit_code, r.output) == (0, "360\n")
    r = ranges(tmp_path)
    assert r.exit_code == 0 and r.output.splitlines()[1:] == [
        f"{tmp_path}/subuid: would be grown: root:{BASE}:{360 * RANGE} (360 ranges), was root:{BASE}:{64 * RANGE}",
        f"{tmp_path}/subgid: would be added: root:{BASE}:{360 * RANGE} (360 ranges)"]
    assert not (tmp_path / "subgid").exists()
    r = ranges(tmp_path, "--write")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == (f"360 uid ranges of 65536 ids from LABNB_UID_BASE={BASE}: as many lab hosts "
                                        f"of 64 MiB as fit this machine's 24105 MiB beside LABNB_SERVER_MEMORY_MB=1024 "
                                        f"(at least 64)")
    for name in ("subuid", "subgid"):
        assert (tmp_path / name).read_text() == f"root:{BASE}:{360 * RANGE}\n"
        assert records.machine_ranges(BASE, str(tmp_path / name))[0] == 360
    r = ranges(tmp_path, "--write", env={"LABNB_SERVER_MEMORY_MB": "8192"})   # fewer wanted: kept
    assert r.exit_code == 0 and f"root's entry root:{BASE}:{360 * RANGE} gives 360 ranges: kept" in r.output


def test_the_command_fails_when_root_can_have_no_range(tmp_path, machine):
    (tmp_path / "subuid").write_text(f"carol:{BASE}:65536\n")
    r = ranges(tmp_path, "--write")
    assert r.exit_code == 1 and "root can have no uid range from LABNB_UID_BASE" in r.output, r.output
    assert (tmp_path / "subuid").read_text() == f"carol:{BASE}:65536\n"


def test_setup_runs_it_once_the_venv_exists_and_sizes_the_ptys_by_it():
    script = SETUP.read_text()
    assert "subuid" not in re.sub(r"#.*", "", script), "setup.sh writes /etc/subuid itself again"
    write = script.index(".venv/bin/labnb lab-hosts ranges --write")
    assert script.index("pip install --no-deps --no-build-isolation -e .") < write
    assert write < script.index("$(.venv/bin/labnb lab-hosts ranges --count) * 256")


def test_doctor_says_the_ranges_and_the_lab_hosts_the_memory_allows_and_warns_when_fewer(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "mem_total_mb", lambda: 24105)
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text(f"root:{BASE}:{64 * RANGE}\n")
    files = (str(tmp_path / "subuid"), str(tmp_path / "subgid"))
    monkeypatch.setattr(subids, "FILES", files)
    found = doctor.check_subids(Settings(uid_base=BASE, memory_mb=1024))
    assert found.ok and not found.warn and found.detail == (
        f"64 uid ranges for lab hosts ({files[0]} root:{BASE}:{64 * RANGE}, from LABNB_UID_BASE={BASE}; {files[1]} "
        f"gives 64); the memory allows 22 lab hosts of 1024 MiB (LABNB_MEMORY_MB)")
    found = doctor.check_subids(Settings(uid_base=BASE, memory_mb=256))
    assert found.ok and found.warn and found.detail.endswith(
        "the memory allows 90 lab hosts of 256 MiB (LABNB_MEMORY_MB): fewer ranges than lab hosts, so a lab host "
        "past 64 is refused") and found.todo.startswith("Run `labnb lab-hosts ranges --write`")
    os.unlink(files[1])
    found = doctor.check_subids(Settings(uid_base=BASE, memory_mb=1024))
    assert found.warn and f"no entry of root's holds LABNB_UID_BASE in {files[1]}" in found.detail
