"""Lab page weight benchmark: how much a lab page loads before it comes alive, and how soon it answers
a click, in Debian's chromium (headless, driven by Playwright) against a real ``labnb serve``.

    python bench/page.py [TREE ...]

Each TREE is a checkout of labnb whose server is measured (``PYTHONPATH`` set to it; the default: this
one), all started at once and measured in turns, round after round, so that they share the machine's
load. The page is lab 1 (tests/fixtures/labs/01-network-modes.md) with its panels closed, for a learner
whose lab host is already running (a first visit started it), so that what is measured is the page.

Per round and tree, in a new browser context (an empty cache):

- cold: the first visit. script_kb: the scripts' bodies (uncompressed; the server sends them so),
  script_gzip_kb: the same compressed by gzip -6 (what a compressing proxy would send), static_kb: every
  static file (scripts, styles); requests: how many went to the server;
- warm: the same page visited again in that context (a link followed, not a reload): requests, and
  static_requests (static files asked of the server: revalidations answered 304, or downloads);
- enabled_ms: from the start of the navigation until a step's Run button is enabled (the page is
  alive); click_to_answer_ms: from a click on it until the step shows that it runs (its status
  changes); answered_ms: their sum, the soonest the page answers a click. Measured in the page
  (performance.now(), a MutationObserver installed before the page's scripts); the click is
  Playwright's, real input, given once the button is enabled (Playwright's checks before it clicks
  take 100 to 300 ms, which is the harness's and not counted).

Then the same with the network of a phone on a room's shared Wi-Fi (Chromium's throttling: THROTTLE),
fewer rounds. The numbers printed are medians over the rounds; the last line is one JSON object with
them, by tree (its commit).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from web_support import CHROMIUM_ARGS, Server  # noqa: E402

LAB, STEP = "01-network-modes", "networks"
ROUNDS, THROTTLED_ROUNDS = 7, 3
# 4 Mbit/s down, 1 Mbit/s up, 100 ms round trip: a phone on a busy room's Wi-Fi
THROTTLE = {"offline": False, "latency": 100, "downloadThroughput": 4e6 / 8, "uploadThroughput": 1e6 / 8}

# In the page before its own scripts: when a Run button is first enabled, when STEP's Run is clicked, and
# when that step first shows that it runs (its cell's data-status, or its section's data-state).
WATCH = """(() => {
  const t = window.__bench = { enabled: null, click: null, answered: null };
  new MutationObserver(() => {
    if (t.enabled === null && document.querySelector(".cell button.run:not([disabled])"))
      t.enabled = performance.now();
    const cell = document.querySelector(".cell[data-step='%s']");
    const step = cell && cell.closest("section.step");
    if (t.click !== null && t.answered === null && cell && (cell.dataset.status === "running" ||
        (step && ["running", "queued"].includes(step.dataset.state))))
      t.answered = performance.now();
  }).observe(document, { subtree: true, childList: true, attributes: true,
                         attributeFilter: ["disabled", "data-status", "data-state"] });
  document.addEventListener("click", e => {
    if (e.target.closest && e.target.closest(".cell[data-step='%s'] button.run")) t.click = performance.now();
  }, true);
})();""" % (STEP, STEP)


class Traffic:
    """What the page asked of the server, from Chromium's own network events (DevTools protocol)."""

    def __init__(self, context, page):
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.requests: dict[str, dict] = {}
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.responseReceived", self._received)
        self.cdp.on("Network.requestServedFromCache", self._cached)

    def throttle(self, conditions: dict) -> None:
        self.cdp.send("Network.emulateNetworkConditions", conditions)

    def _sent(self, e):
        self.requests[e["requestId"]] = {"url": e["request"]["url"], "type": e.get("type"), "cached": False,
                                         "status": None}

    def _received(self, e):
        r = self.requests.get(e["requestId"])
        if r is not None:
            r["status"] = e["response"]["status"]
            r["cached"] = r["cached"] or e["response"].get("fromDiskCache") or e["response"].get("fromMemoryCache")

    def _cached(self, e):
        if e["requestId"] in self.requests:
            self.requests[e["requestId"]]["cached"] = True

    def take(self) -> list[dict]:
        taken, self.requests = list(self.requests.values()), {}
        return taken


def visit(page, traffic: Traffic, url: str, bodies: bool) -> dict:
    """One navigation to the lab page, until a click on Run answered and the step's run ended; with
    ``bodies``, the sizes of the static files it loaded."""
    responses = []

    def on_response(response):
        responses.append(response)
    if bodies:
        page.on("response", on_response)
    page.goto(url, wait_until="commit")
    page.locator(f".cell[data-step='{STEP}'] button.run").click(timeout=120_000)   # once it is enabled
    deadline = time.monotonic() + 120   # polled: the page's CSP forbids the eval behind wait_for_function
    while (times := page.evaluate("window.__bench"))["answered"] is None:
        assert time.monotonic() < deadline, f"a click on Run in {url} was not answered in 120 s"
        page.wait_for_timeout(10)
    expect(page.locator(f".cell[data-step='{STEP}']")).not_to_have_attribute("data-status", "running",
                                                                            timeout=120_000)
    page.wait_for_load_state("networkidle")
    sent = traffic.take()
    answer = times["answered"] - times["click"]
    out = {"enabled_ms": times["enabled"], "click_to_answer_ms": answer, "answered_ms": times["enabled"] + answer,
           "requests": sum(not r["cached"] for r in sent),
           "static_requests": sum(not r["cached"] and "/static/" in r["url"] for r in sent)}
    if bodies:
        page.remove_listener("response", on_response)
        static = [(r, r.body()) for r in responses if "/static/" in r.url and r.status == 200]
        scripts = [body for r, body in static if r.request.resource_type == "script"]
        out.update(script_kb=sum(map(len, scripts)) / 1000,
                   script_gzip_kb=sum(len(gzip.compress(b, 6)) for b in scripts) / 1000,
                   static_kb=sum(len(body) for _, body in static) / 1000,
                   script_files=sorted(r.url.split("/static/")[1].split("?")[0] for r, _ in static
                                       if r.request.resource_type == "script"))
    return out


def rounds(browser, server: Server, state: dict, conditions: dict | None) -> dict:
    """One cold and one warm visit in a new context (an empty cache) of the learner with ``state``."""
    context = browser.new_context(storage_state=state)
    try:
        page = context.new_page()
        page.add_init_script(WATCH)
        traffic = Traffic(context, page)
        if conditions:
            traffic.throttle(conditions)
        cold = visit(page, traffic, f"{server.url}/labs/{LAB}", True)
        page.goto(f"{server.url}/", wait_until="networkidle")   # then back to the lab by a link, not a reload
        traffic.take()
        warm = visit(page, traffic, f"{server.url}/labs/{LAB}", False)
        return {"cold": cold, "warm": warm}
    finally:
        context.close()


def learner_state(browser, server: Server) -> dict:
    """A learner's cookie whose lab host is ready (their first visit started it)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/labs/{LAB}?token={server.token}")
    expect(page.locator("#host")).to_have_attribute("data-state", "ready", timeout=300_000)
    state = context.storage_state()
    context.close()
    return state


def label(tree: Path) -> str:
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or tree.name
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return commit + ("+changes" if dirty else "")


def medians(samples: list[dict]) -> dict:
    out = {}
    for visit_kind in ("cold", "warm"):
        for key, value in samples[0][visit_kind].items():
            if isinstance(value, (int, float)):
                out[f"{visit_kind}_{key}"] = round(statistics.median(s[visit_kind][key] for s in samples), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT], help="labnb checkouts to measure")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    servers = [Server(f"/var/lib/labnb-bench-page-{os.getpid()}-{i}", uid_slot=8 + 12 * i, pool_size=1,
                      env={"PYTHONPATH": str(tree)}) for i, tree in enumerate(trees)]
    results = {}
    try:
        for server in servers:
            server.prepare().start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
            try:
                states = [learner_state(browser, s) for s in servers]
                files = {}
                for name, conditions, n in (("loopback", None, ROUNDS), ("throttled", THROTTLE, THROTTLED_ROUNDS)):
                    samples = {tree: [] for tree in trees}
                    for _ in range(n + 1):   # the first round warms the servers up and is not counted
                        for tree, server, state in zip(trees, servers, states):
                            samples[tree].append(rounds(browser, server, state, conditions))
                    for tree in trees:
                        files[tree] = samples[tree][-1]["cold"]["script_files"]
                        results.setdefault(label(tree), {})[name] = medians(samples[tree][1:])
            finally:
                browser.close()
    finally:
        for server in servers:
            server.cleanup()
    for tree in trees:
        name = label(tree)
        print(f"{name} ({tree}): scripts before the page answers: {', '.join(files[tree])}")
        for network, numbers in results[name].items():
            print(f"  {network}: " + ", ".join(f"{k} {v}" for k, v in numbers.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
