"""Finding and removing sandbox lab hosts, for operators and after a crash.

A lab host outlives a server killed with SIGKILL (its namespaces live on
under the ``unshare`` process that made it). Its record names the server
process that owns it; ``gc`` removes lab hosts whose owner is gone, and any
cgroup subtree or dir without a record (a crash mid-creation).

A learner's set of lab hosts (labnet.py) is recorded too: its lab network's namespace is held by its server
alone and went with it; ``gc`` removes the record of a set whose server is gone (its members are lab hosts
like any, removed as above).
"""
from __future__ import annotations

from ..config import Settings
from . import cgroups, records
from .sandbox import teardown


def list_all(settings: Settings) -> list[dict]:
    """Every sandbox lab host of this state dir, with whether its owner still runs."""
    found = {m["id"]: m for m in records.read_all(settings.state_dir)}
    prefix = records.id_prefix(settings.state_dir, settings.node)
    for lab_host_id, above in cgroups.existing_ids(prefix).items():
        if records.own(prefix, lab_host_id):
            found.setdefault(lab_host_id, {"id": lab_host_id, "cgroup_parent": above})
    slots = records.slots_of(settings.state_dir)
    for lab_host_id, slot in slots.items():
        found.setdefault(lab_host_id, {"id": lab_host_id})
    for meta in found.values():
        meta.setdefault("slot", slots.get(meta["id"]))
        meta["owner_alive"] = records.process_alive(meta.get("owner"), meta.get("owner_start"))
        meta["alive"] = records.process_alive(meta.get("pid"), meta.get("pid_start"))
    return sorted(found.values(), key=lambda m: m["id"])


def remove(settings: Settings, meta: dict) -> None:
    teardown(settings, meta["id"], meta.get("pid"), meta.get("pid_start"), meta.get("slot"), meta.get("uid"),
             meta.get("cgroup_parent"))


def gc(settings: Settings, everything: bool = False) -> list[str]:
    """Remove orphaned lab hosts and sets (all of them with ``everything``); return their ids."""
    removed = []
    for meta in list_all(settings):
        if everything or not meta["owner_alive"]:
            remove(settings, meta)
            removed.append(meta["id"])
    for meta in records.read_sets(settings.state_dir):
        if everything or not records.process_alive(meta.get("owner"), meta.get("owner_start")):
            records.remove_set(settings.state_dir, meta["id"])
            removed.append(meta["id"])
    return removed
