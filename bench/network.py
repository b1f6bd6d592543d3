"""Network picture benchmark: how long reading a lab host's network takes, with N namespaces in it.

The namespaces are what the labs make: a third containers on docker0, a third ``ip netns`` namespaces
joined to the lab host by veth pairs with addresses, and a few containers in container mode, so every
kind of box and link is read. Each read is what ``/network.json`` does (``picture.read``, layout
included, with the sandbox keys of the lab host's containers known from the
first read, as the server keeps them); the SVG is rendered from it.

Run as root on an otherwise idle machine:  .venv/bin/python bench/network.py [N ...]  (default 2 10 30)
Prints one line per N, and as its last line one JSON object.
Uses its own state dir (/var/lib/labnb-bench-network) and removes every lab host it made.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

from webapp import executor
from webapp.config import Settings
from webapp.labhost import image, reaper
from webapp.labhost.pool import create
from webapp.labhost.sandbox import build_seed
from webapp.labhost.statedir import image_archive, prepare_state_dir
from webapp.network import picture, svg

READS = 20


def sh(host, script: str) -> None:
    outcome = executor.start(host, script, on_output=lambda data: None, timeout=600, window=None).wait(620)
    if outcome is None or not outcome.ok:
        raise SystemExit(f"setting up the namespaces failed: {outcome}")


def populate(host, n: int) -> None:
    """Grow the lab host to ``n`` namespaces besides its own (containers and ip netns, a third shared)."""
    have = len(picture.read(host)["namespaces"]) - 1
    lines = []
    for i in range(have, n):
        if i % 3 == 0:
            lines.append(f"docker run -d --name c{i} busybox sleep 3600 >/dev/null")
        elif i % 3 == 1:
            lines.append(f"docker run -d --name s{i} --network container:c{i - 1} busybox sleep 3600 >/dev/null "
                         f"&& ip netns add x{i}")   # container mode adds no namespace: an ip netns does
        else:
            lines.append(f"ip netns add n{i} && ip link add h{i} type veth peer name p{i} && "
                         f"ip link set p{i} netns n{i} && ip link set h{i} up && "
                         f"ip netns exec n{i} ip addr add 10.9.{i}.2/24 dev p{i} && "
                         f"ip netns exec n{i} ip link set p{i} up")
    if lines:
        sh(host, "\n".join(lines))


def measure(host, n: int) -> dict:
    populate(host, n)
    times, svgs, keys = [], [], {}
    t0 = time.monotonic()
    picture.read(host, keys)   # the first read asks dockerd for every container's sandbox key
    first = (time.monotonic() - t0) * 1000
    for _ in range(READS):
        t0 = time.monotonic()
        drawn = picture.read(host, keys)
        times.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        svg.render(drawn)
        svgs.append((time.monotonic() - t0) * 1000)
    times.sort()
    return {"namespaces": len(drawn["namespaces"]), "interfaces": sum(len(ns["interfaces"]) for ns in drawn["namespaces"]),
            "links": len(drawn["links"]), "first_read_ms": round(first, 1), "read_ms_p50": round(statistics.median(times), 1),
            "read_ms_p95": round(times[int(0.95 * (len(times) - 1))], 1), "svg_ms_p50": round(statistics.median(svgs), 1),
            "json_kb": round(len(json.dumps(drawn)) / 1024, 1), "notes": drawn["notes"]}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [2, 10, 30]
    settings = Settings(state_dir="/var/lib/labnb-bench-network", max_lab_hosts=4)
    prepare_state_dir(settings)
    image.build(image_archive(settings))
    build_seed(settings)
    host = create(settings)
    results = {}
    try:
        for n in sorted(sizes):
            results[n] = measure(host, n)
            print(f"{n} namespaces besides the lab host's: {results[n]}", flush=True)
    finally:
        host.destroy()
        reaper.gc(settings, everything=True)
    print(json.dumps({"reads": READS, "by_size": results}))


if __name__ == "__main__":
    main()
