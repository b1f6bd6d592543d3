"""Cluster benchmark: the workshop of bench/workshop.py on one machine's
default server (SQLite, no proxy), then the same room on NODES labnb nodes
sharing PostgreSQL and Redis behind HAProxy (tests/cluster_support.py), in
one run on this machine, so that the ratio of the two is the cluster's cost
on the same cores; then one node is killed (SIGKILL) to count what is lost.

Per setup (``one`` and ``cluster`` in the output), as in bench/workshop.py:
- all_ready_s: N joins sent at once until every learner holds a ready lab
  host with the lab set up (through HAProxy in the cluster: its placement).
- first_output_p95_ms: Socket.IO "run" of a step until its first output.
- dashboard_lag_p95_ms: a run's end as its learner hears it until the
  instructor's dashboard (a tab on the first node) is pushed a state that
  shows it: in the cluster half the learners are on another node.
- errors: requests, events or runs that failed.
- server_rss_mb: each server worker's RSS at the end.
Then, the cluster only:
- placed: learners per node, as HAProxy placed them.
- runs_lost_on_node_kill: the last node is killed right after each of its
  learners started its lab's last step again: runs recorded before the kill
  (in the shared store) whose record or stored output is missing or shorter
  after it. (Lab 1's steps end within a second or so: whether some still
  run at the kill is luck, runs_running_at_kill says; tests/test_cluster_nodes.py
  kills a node mid-run for sure.)
- dead_noticed_s: from the kill until the store says the node is down.
- moved_ready_s: from then until every learner of the dead node, whose
  next request HAProxy sends to another node, has a new lab host there
  with the lab set up (the other nodes keep room for them).

Usage, as root on an otherwise idle machine, after ``sh scripts/setup.sh
test --co -q`` (PostgreSQL, Redis, HAProxy) and with uid ranges for 2N lab
hosts (``labnb lab-hosts ranges``):
    .venv/bin/python bench/cluster.py [N] [--nodes K] [--steps S]
N learners (60 by default), K nodes (2), the first S steps of lab 1 (all).
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster_support import Cluster, behind_haproxy, through  # noqa: E402
from haproxy_support import placed  # noqa: E402
from web_support import ROOT, Server, wait_for  # noqa: E402
from workshop import CODE, LAB, Dashboard, Learner, at_once, lab_steps, pct  # noqa: E402

MEMORY_MB = 256    # per lab host: 2N of them (both setups' warm pools) and the servers fit a 24 GiB machine


def room_env(n: int, per_node: int) -> dict:
    """A workshop room of ``n`` places over nodes holding ``per_node`` lab hosts each."""
    return {"LABNB_WORKSHOP": "1", "LABNB_CAPACITY": str(n), "LABNB_ACCESS_CODE": CODE, "LABNB_WORKSHOP_LABS": LAB,
            "LABNB_LABS_DIR": str(ROOT / "labs"), "LABNB_MEMORY_MB": str(MEMORY_MB),
            "LABNB_MAX_LAB_HOSTS": str(per_node)}


def rss_mb(server: Server) -> float:
    with open(f"/proc/{server.worker_pid()}/status") as f:
        return round(next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024, 1)


def wait_pools(servers: list[Server], each: int) -> None:
    """Until every server's warm pool holds ``each`` lab hosts (they fill one at a time)."""
    for server in servers:
        operator = server.operator()

        def full():
            page = operator.get(f"{server.url}/lab-hosts", timeout=30).text
            return int(re.search(r'data-waiting="(\d+)"', page).group(1)) >= each
        wait_for(full, 30 * each, 1, f"the warm pool of {server.url} to fill")


def room(entry: Server, dashboard_server: Server, n: int, steps: list[str]) -> tuple[dict, list[Learner]]:
    """N learners join through ``entry`` at once and run ``steps``; the numbers, and the learners (connected)."""
    errors: list[str] = []
    dashboard = Dashboard(dashboard_server)
    learners = [Learner(entry, i + 1) for i in range(n)]
    t0 = time.perf_counter()
    at_once(learners, Learner.join, errors)
    ready_s = time.perf_counter() - t0
    at_once(learners, Learner.connect, errors)
    results = at_once(learners, lambda learner: learner.run_lab(steps), errors)
    runs = [r for per_learner in results if per_learner for r in per_learner]
    passed = sum(r[2] for r in runs)
    if len(runs) - passed:
        errors.append(f"{len(runs) - passed} of {len(runs)} runs failed their checks: " + "; ".join(
            f"{learner.name} {why}" for learner in learners for why in learner.failed[:1])[:500])
    time.sleep(1)   # the last pushes
    lags = dashboard.lags(learners)
    dashboard.client.disconnect()
    for e in errors[:5]:
        print("error:", e)
    return {"all_ready_s": round(ready_s, 2),
            "first_output_p95_ms": round(pct([r[0] for r in runs], 95) * 1000, 1),
            "dashboard_lag_p95_ms": round(pct(lags, 95) * 1000, 1),
            "runs": len(runs), "runs_passed": passed, "errors": len(errors)}, learners


def disconnect(learners: list[Learner]) -> None:
    for learner in learners:
        if learner.client is not None:
            learner.client.disconnect()


def one_machine(n: int, steps: list[str]) -> dict:
    server = Server(f"/var/lib/labnb-bench-cluster-one-{os.getpid()}", uid_slot=8, pool_size=n,
                    env=room_env(n, n + 2))
    learners: list[Learner] = []
    try:
        server.prepare().start()
        wait_pools([server], n)
        numbers, learners = room(server, server, n, steps)
        numbers["server_rss_mb"] = [rss_mb(server)]
        return numbers
    finally:
        disconnect(learners)
        server.cleanup()


def stored(store, learners: list[str]) -> dict[str, tuple[str, int]]:
    """Every recorded run of ``learners``: its status and stored output's length."""
    out = {}
    for run in store.latest_runs([LAB], learners):
        out[run["id"]] = (run["status"], len(store.output(run["id"])))
    return out


def cluster(n: int, k: int, steps: list[str]) -> dict:
    names = tuple("abcdefgh"[:k])
    per_node = -(-n // k)
    # each node keeps room for the learners of a node that dies (2 spare for the instructor and a reset)
    c = Cluster("bench", names, uid_slot=8, pool_size=per_node, env=room_env(n, 2 * per_node + 2))
    learners: list[Learner] = []
    proxy = behind_haproxy(c)   # a generator: HAProxy runs until it is closed
    try:
        c.start()
        servers = list(c.nodes.values())
        wait_pools(servers, per_node)
        front = next(proxy)
        first = servers[0]
        numbers, learners = room(through(front, first), first, n, steps)
        numbers["server_rss_mb"] = [rss_mb(s) for s in servers]
        with c.store() as store:
            where = {p["learner"]: p["node"] for p in store.placements()}
            numbers["placed"] = {name: sum(1 for v in where.values() if v == name) for name in names}
            # kill the last node as each of its learners runs a step: all it recorded must stay
            victim = names[-1]
            victims = [learner for learner in learners if placed(learner.http) == victim]
            at_once(victims, lambda learner: learner.client.call("run", {"lab": LAB, "step": steps[-1]}, timeout=60),
                    [])
            everyone = list(where)
            before = stored(store, everyone)
            t0 = time.perf_counter()
            c.nodes[victim].stop(signal.SIGKILL)   # the node's processes, at once (its lab hosts are reaped later)
            wait_for(lambda: any(x["name"] == victim and x["state"] == "down" for x in store.nodes()), 60, 0.2,
                     f"node {victim} to be noticed dead")
            numbers["dead_noticed_s"] = round(time.perf_counter() - t0, 2)
            after = stored(store, everyone)
            numbers["runs_lost_on_node_kill"] = sum(
                1 for run, (_, size) in before.items() if run not in after or after[run][1] < size)
            numbers["runs_before_kill"] = len(before)
            numbers["runs_running_at_kill"] = sum(1 for status, _ in before.values() if status == "running")
            disconnect(victims)
            t0 = time.perf_counter()
            moved: list[str] = []
            at_once(victims, lambda learner: learner.server.open_lab(learner.http, LAB), moved)
            numbers["moved_ready_s"] = round(time.perf_counter() - t0, 2)
            numbers["moved"] = len(victims) - len(moved)
            numbers["errors"] += len(moved)
            for e in moved[:5]:
                print("error: a move:", e)
        return numbers
    finally:
        disconnect(learners)
        proxy.close()
        c.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=60)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="the first S steps of lab 1 (0: all)")
    args = parser.parse_args()
    steps = lab_steps()[:args.steps or None]
    one = one_machine(args.n, steps)
    print("one machine:", json.dumps(one))
    many = cluster(args.n, args.nodes, steps)
    print(f"{args.nodes} nodes:", json.dumps(many))
    print(json.dumps({
        "nodes": args.nodes, "learners": args.n, "steps": len(steps),
        "errors": one["errors"] + many["errors"],
        "all_ready_s": many["all_ready_s"],
        "first_output_p95_ms": many["first_output_p95_ms"],
        "dashboard_lag_p95_ms": many["dashboard_lag_p95_ms"],
        "runs_lost_on_node_kill": many["runs_lost_on_node_kill"],
        "first_output_p95_ratio": round(many["first_output_p95_ms"] / one["first_output_p95_ms"], 2),
        "one": one, "cluster": many,
    }))


if __name__ == "__main__":
    main()
