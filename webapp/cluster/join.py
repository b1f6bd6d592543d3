"""What a node settles with the cluster before it serves (``labnb serve --node NAME``, in the master):
the settings a node cannot do without, the secrets every node must share, and the busybox image.

Every node signs session cookies with one key and checks one token, one operator's token and one
access code, or a learner sent to another node would be a stranger there. The cluster's first node makes
each (from what its operator set, if anything: ``store.shared_value``); the others take them. An operator
who sets one that differs from the cluster's is refused, not overruled.
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Callable

from ..config import Settings
from ..errors import ConfigError, LabnbError
from ..guard.auth import operator_token, secret_key
from ..labhost.statedir import image_archive
from ..store import open_store
from .node import DOWN, image_id, stale


def needs(settings: Settings) -> None:
    """A node shares its store and its events: refuse one without PostgreSQL or Redis, naming the setting."""
    for setting, value, what in (("LABNB_DATABASE_URL", settings.database_url, "postgresql://USER:PASSWORD@HOST/DB"),
                                 ("LABNB_REDIS_URL", settings.redis_url, "redis://HOST:6379/0")):
        if not value:
            raise ConfigError(setting, f"this server is node {settings.node!r} of a cluster (LABNB_NODE), which "
                              f"shares its store and events with the other nodes, but {setting} is empty",
                              f"Set {setting}={what}, the same on every node (docs/cluster.md), or unset "
                              f"LABNB_NODE to run on one machine")


def alone(settings: Settings) -> None:
    """Refuse a server without LABNB_NODE on a cluster's store: at its start it would cut off every running
    run in the store (on one machine they are all its own), the nodes' too, and serve learners beside them."""
    store = open_store(settings)
    try:
        nodes = sorted(n["name"] for n in store.nodes())
    finally:
        store.close()
    if nodes:
        raise ConfigError("LABNB_NODE", f"LABNB_DATABASE_URL is the store of a cluster (node {', node '.join(nodes)} "
                          "joined it) but LABNB_NODE is empty: this server would end their running runs and serve "
                          "learners beside them", "Set LABNB_NODE to this node's name (docs/cluster.md), or give "
                          "a one-machine server a database of its own")


def settle(settings: Settings, access_code: Callable[[], str]) -> Settings:
    """``settings`` with the cluster's token, operator's token and (a workshop's) access code, and its secret
    key in this node's state dir; ``access_code`` makes a new code. Raises ConfigError for a node without
    PostgreSQL or Redis, or with a value of its own that differs from the cluster's."""
    needs(settings)
    store = open_store(settings)
    try:
        key = bytes.fromhex(store.shared_value("secret_key", lambda: secrets.token_hex(32)))
        secret_key(settings.state_dir, key)
        token = _shared(store, settings, "token", lambda: secrets.token_hex(24))
        settings = dataclasses.replace(settings, token=token, operator_token=_shared(
            store, settings, "operator_token", lambda: operator_token(token, key)))
        if settings.workshop:
            settings = dataclasses.replace(settings, access_code=_shared(store, settings, "access_code",
                                                                         access_code))
    finally:
        store.close()
    return settings


def _shared(store, settings: Settings, name: str, make: Callable[[], str]) -> str:
    """The cluster's value of setting ``name``: this node's own if it is the first to tell one."""
    given = getattr(settings, name)
    value = store.shared_value(name, lambda: given or make())
    if given and given != value:
        setting = f"LABNB_{name.upper()}"
        raise ConfigError(setting, f"{setting} differs from the one the cluster's nodes use (its first node "
                          f"set it; node {settings.node!r} must use the same)",
                          f"Unset {setting} on node {settings.node!r} to take the cluster's, or set the same "
                          f"value as on the other nodes")
    return value


def check_image(settings: Settings) -> None:
    """Refuse to serve labs another than the nodes up now serve: the busybox image ids must be one."""
    mine = image_id(settings)
    store = open_store(settings)
    try:
        others = [n for n in store.nodes() if n["name"] != settings.node and n["state"] != DOWN
                  and not stale(n) and n["image_id"] and n["image_id"] != mine]
    finally:
        store.close()
    if mine and others:
        names = ", ".join(n["name"] for n in others)
        raise LabnbError(
            f"node {settings.node!r} has busybox image {mine[:12]} ({image_archive(settings)}) but node(s) "
            f"{names} up now serve {others[0]['image_id'][:12]}: its labs would not be the others'",
            f"Install the same busybox-static package as on node(s) {names} (`dpkg -s busybox-static` there "
            f"says its version), run `labnb image build --force` on this node, and start it again")
