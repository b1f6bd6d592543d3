"""``labnb cluster``: the operator's view of a cluster's nodes and what they may take (docs/cluster.md).

Every command reads the cluster's store (LABNB_DATABASE_URL), as the nodes do: run it on any node.
"""
from __future__ import annotations

import contextlib
import json
import time

import click

from ..config import Settings
from ..errors import ConfigError


@contextlib.contextmanager
def _store():
    """The cluster's store, from LABNB_DATABASE_URL."""
    from ..store import open_store

    try:
        settings = Settings.from_env()
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if not settings.database_url:
        raise click.UsageError("LABNB_DATABASE_URL is empty: set it to the cluster's store, as on its nodes "
                               "(docs/cluster.md)")
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


@click.group()
def cluster() -> None:
    """The nodes of a cluster: their state, and draining one."""


def _set_state(name: str, state: str) -> None:
    with _store() as store:
        known = [n["name"] for n in store.nodes()]
        if name not in known:
            raise click.ClickException(f"no node {name!r} in the cluster; its nodes: {', '.join(known) or 'none'} "
                                       "(`labnb cluster status`)")
        store.set_node_state(name, state)


@cluster.command()
@click.argument("name")
def drain(name: str) -> None:
    """Take no new learner on node NAME; those on it carry on (HAProxy reads it from the node's agent-check)."""
    from ..cluster.node import DRAINING

    _set_state(name, DRAINING)
    click.echo(f"node {name} is draining: it takes no new learner; those on it carry on. "
               f"`labnb cluster undrain {name}` takes new ones again")


@cluster.command()
@click.argument("name")
def undrain(name: str) -> None:
    """Take new learners on node NAME again."""
    from ..cluster.node import UP

    _set_state(name, UP)
    click.echo(f"node {name} takes new learners again")


@cluster.command()
@click.option("--json", "as_json", is_flag=True, help="Every node's row as JSON.")
def status(as_json: bool) -> None:
    """Every node: its state, heartbeat age, learners and free lab hosts."""
    from ..cluster.node import DOWN, stale

    with _store() as store:
        nodes = store.nodes()
    now = time.time()
    if as_json:
        click.echo(json.dumps(nodes, indent=1))
        return
    click.echo(f"{'NODE':<13} {'STATE':<22} {'HEARTBEAT':>9} {'LEARNERS':>8} {'FREE':>5} ADDRESS")
    for n in sorted(nodes, key=lambda n: n["name"]):
        state = n["state"] + (" (silent: dead?)" if n["state"] != DOWN and stale(n, now) else "")
        facts = n.get("facts") or {}
        click.echo(f"{n['name']:<13} {state:<22} {_age(now - n['heartbeat']):>9} {facts.get('learners', '-'):>8} "
                   f"{facts.get('free', '-'):>5} {n['address']}")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 \
        else f"{seconds / 3600:.0f} h"
