"""``labnb cluster``: the operator's commands for several labnb nodes behind HAProxy (docs/cluster.md):
their state, draining one, and HAProxy's config.

Every command that needs the nodes reads the cluster's store (LABNB_DATABASE_URL), as the nodes do: run
it on any node.
"""
from __future__ import annotations

import contextlib
import json
import os
import time

import click

from ..cluster import haproxy
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
    """Several labnb nodes behind HAProxy, sharing PostgreSQL and Redis."""


def _node(ctx, param, values: tuple[str, ...]) -> list[haproxy.Node]:
    try:
        return [haproxy.parse_node(v) for v in values]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _joined(rows: list[dict], given: set[str]) -> list[haproxy.Node]:
    """The nodes the store knows (``store.nodes()``: each one's name, address and agent port as it beats),
    but those in ``given``."""
    try:
        return [haproxy.parse_node(f"{r['name']}={r['address']}" + (f",agent={r['agent']}" if r["agent"] else ""))
                for r in rows if r["name"] not in given]
    except ValueError as e:
        raise click.ClickException(f"the cluster's store has a node HAProxy cannot reach: {e}") from None


@cluster.command("haproxy-config")
@click.option("--node", "nodes", multiple=True, callback=_node, metavar="NAME=HOST:PORT[,agent=PORT]",
              help="A node: its LABNB_NODE, where it serves, and its LABNB_AGENT_PORT. Repeat for each node. "
                   "With LABNB_DATABASE_URL set, every node that ever joined the cluster is in too (a node "
                   "named here as well is as given here).")
@click.option("--bind", default="0.0.0.0", show_default=True, help="The address HAProxy listens on.")
@click.option("--port", default=80, show_default=True, type=click.IntRange(1, 65535),
              help="The port learners open (443 with --cert).")
@click.option("--cert", default="", help="A PEM file with the certificate and its key: HAProxy ends TLS.")
@click.option("--maxconn", default=haproxy.Front.maxconn, show_default=True, type=click.IntRange(1),
              help="Connections to HAProxy at once, in all.")
@click.option("--node-maxconn", default=haproxy.Front.node_maxconn, show_default=True, type=click.IntRange(1),
              help="Connections to one node's pages at once (more wait in HAProxy): its LABNB_MAX_SOCKETS and 64.")
@click.option("--service-maxconn", default=haproxy.Front.service_maxconn, show_default=True, type=click.IntRange(1),
              help="Connections to one node's lab hosts' web services at once: its LABNB_PROXY_CONNECTIONS.")
@click.option("--check-every", default=haproxy.Front.check_every, show_default=True,
              help="How often HAProxy checks each node's health and asks its agent.")
@click.option("--admin-socket", default="", help="A path for HAProxy's runtime API (show stat), root's only.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the config there (default: print it).")
def haproxy_config(nodes: list[haproxy.Node], bind: str, port: int, cert: str, maxconn: int, node_maxconn: int,
                   service_maxconn: int, check_every: str, admin_socket: str, output: str | None) -> None:
    """Write haproxy.cfg for the nodes: learners pinned to a node by a cookie, new ones placed by each
    node's agent-check, web services' host names routed to their lab host's node, slow clients held at
    HAProxy. Nodes behind it need LABNB_TRUSTED_PROXIES set to HAProxy's address."""
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if settings.database_url:
        given = {n.name for n in nodes}
        with _store() as store:
            nodes = [*_joined(store.nodes(), given), *nodes]
    if not haproxy.DURATION.fullmatch(check_every):
        raise click.BadParameter(f"{check_every!r} is not a duration such as 2s or 500ms", param_hint="--check-every")
    front = haproxy.Front(bind=bind, port=port, cert=cert, domain=settings.proxy_domain, maxconn=maxconn,
                          node_maxconn=node_maxconn, service_maxconn=service_maxconn, check_every=check_every,
                          admin_socket=admin_socket, session_days=settings.session_days)
    try:
        text = haproxy.render(list(nodes), front)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, output)
    click.echo(f"wrote {output} for {len(nodes)} node(s); check it with: haproxy -c -f {output}", err=True)


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
