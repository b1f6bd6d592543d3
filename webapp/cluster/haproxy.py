"""HAProxy's configuration for labnb nodes (``labnb cluster haproxy-config``; docs/cluster.md).

What it asks of HAProxy, and why:

- A learner stays on their node: HAProxy inserts a cookie of its own
  (``COOKIE``, never one of labnb's: those are ``labnb`` and ``labnb-<port>``)
  naming the node that answered their first request; WebSockets pass
  (``timeout tunnel`` above Socket.IO's ping interval and timeout).
- A new learner goes to a node by weight (``balance roundrobin``, whose
  weights change at run time): every node is ``weight 100`` and its
  agent-check (webapp/cluster/agent.py) says ``<free>%``, so a node's weight
  is the lab hosts it can still give; ``drain`` and ``down`` take none.
  Each node is listed a second time as a ``backup`` that tracks the first
  (down and drained with it, but its weight its own): when every node is
  full (weight 0), a new learner still gets a node, where the room's queue
  holds them, instead of HAProxy's 503.
- A node that stops answering its health check (``/healthz``) or refuses
  connections: its learners' requests go to another node (``option
  redispatch``, ``retries``), where labnb gives them a new lab host. A node
  marked down by its agent, or drained, still serves its learners (``option
  persist``, cookies).
- A lab host's web service, ``p<port>-lh-<node>-....<domain>``, goes to the
  node in its host name (a backend per node, no cookie). Its path-based way
  in, ``/.labnb/p/<pass>/`` on labnb's own host, is opaque to HAProxy and
  its sandboxed pages' requests carry no cookie: the first request for a
  pass that comes with HAProxy's cookie (the owner's, from their lab page)
  records the pass's node in a stick table, and the pass's requests without
  a cookie go there.
- Slow clients never reach a node: a request's head and its body are read
  whole by HAProxy (``timeout http-request``, ``option http-buffer-request``)
  before a node sees it; connections are bounded in all (``maxconn``) and per
  node (``server ... maxconn``; more wait in HAProxy's queue).
- The nodes believe HAProxy's X-Forwarded-For (LABNB_TRUSTED_PROXIES): HAProxy
  removes whatever a client sent there and appends the client's address.
"""
from __future__ import annotations

import dataclasses
import re

from ..config import NODE_NAME
from ..guard.proxied import HEALTH_PATH

COOKIE = "labnb-node"        # HAProxy's own cookie; labnb's are "labnb" and "labnb-<port>" (app.cookie_name)
PATH_WAY = "/.labnb/p/"      # a web service's path-based way in (webapp/proxy/gateway.py UNDER): /.labnb/p/<pass>/
PASS_LEN = 256               # characters of a pass kept as its key (a pass is about 150)
WEIGHT = 100                 # every node's configured weight: an agent's "<n>%" makes it n
DURATION = re.compile(r"[1-9][0-9]{0,6}(us|ms|s|m|h)")   # HAProxy's time format, as the options take it
HOST_MOST = 40               # characters of a lab host's id in a web service's host name (the gateway's HOST)
TUNNEL = "2m"                # a quiet WebSocket's life: above Socket.IO's 25 s ping interval + 60 s timeout


@dataclasses.dataclass(frozen=True)
class Node:
    """A labnb node as HAProxy reaches it: its name (LABNB_NODE), address and port, and its agent-check's
    port (LABNB_AGENT_PORT; None: no agent, a fixed weight)."""
    name: str
    host: str
    port: int
    agent: int | None = None


def parse_node(text: str) -> Node:
    """``name=host:port[,agent=port]`` (IPv6: ``[::1]:port``). Raises ValueError saying what is wrong."""
    name, sep, rest = text.partition("=")
    address, _, extra = rest.partition(",")
    host, _, port = address.rpartition(":")
    agent = extra.removeprefix("agent=") if extra else None
    if not sep or not NODE_NAME.fullmatch(name):
        raise ValueError(f"{text!r}: the node's name must come first, 1 to 12 lower-case letters and digits "
                         "(its LABNB_NODE), then =host:port")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or not re.fullmatch(r"[\w.:\[\]-]+", host):
        raise ValueError(f"{text!r}: after {name}= comes the node's host:port, such as 10.0.0.2:8888")
    if agent is not None and (extra == agent or not agent.isdigit() or not 0 < int(agent) < 65536):
        raise ValueError(f"{text!r}: after the address may come ,agent=<port> (the node's LABNB_AGENT_PORT)")
    return Node(name, host, int(port), int(agent) if agent is not None else None)


@dataclasses.dataclass(frozen=True)
class Front:
    """Where HAProxy listens and what it bounds. ``cert``: a PEM file with the certificate and its key (TLS
    ends at HAProxy); ``domain``: the web services' host names' (LABNB_PROXY_DOMAIN); ``admin_socket``: a
    path for HAProxy's runtime API (``show stat``), the operator's only."""
    bind: str = "0.0.0.0"
    port: int = 80
    cert: str = ""
    domain: str = "localhost"
    maxconn: int = 4096          # connections at once, in all
    node_maxconn: int = 256      # to one node's pages (labnb: LABNB_MAX_SOCKETS 192 + 64 threads for HTTP); more wait
    service_maxconn: int = 64    # to one node's lab hosts' web services (labnb: LABNB_PROXY_CONNECTIONS)
    head_timeout: str = "10s"    # a request's head and body arrive whole within this, or 408
    client_timeout: str = "60s"  # a client's silence in a request or between them
    server_timeout: str = "90s"  # a node's silence in an answer (a lab host claim waits up to 60 s)
    check_every: str = "2s"      # health and agent checks, per node
    session_days: float = 7.0    # the nodes' LABNB_SESSION_DAYS: a learner's cookie of HAProxy's lives as long
    admin_socket: str = ""


def render(nodes: list[Node], front: Front = Front()) -> str:
    """The whole haproxy.cfg for ``nodes`` behind ``front``. Raises ValueError if there is no node or two
    nodes have one name."""
    if not nodes:
        raise ValueError("no node: name at least one (--node name=host:port,agent=port)")
    names = [n.name for n in nodes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"nodes named twice: {', '.join(twice)}; every node's LABNB_NODE is its own")
    tls = f" ssl crt {front.cert}" if front.cert else ""
    domain = re.escape(front.domain.lower()).replace("\\", "\\\\")
    lines = [
        "# labnb nodes behind HAProxy: written by `labnb cluster haproxy-config` (webapp/cluster/haproxy.py)",
        "global",
        f"    maxconn {front.maxconn}",
        "    hard-stop-after 5m                # a reload's old process ends its WebSockets by then (tabs reconnect)",
        *([f"    stats socket {front.admin_socket} mode 600 level admin"] if front.admin_socket else []),
        "",
        "defaults",
        "    mode http",
        "    option http-buffer-request        # a node sees a request only once its head and body are whole",
        f"    timeout http-request {front.head_timeout}",
        f"    timeout client {front.client_timeout}",
        f"    timeout http-keep-alive {front.head_timeout}",
        "    timeout connect 3s",
        f"    timeout server {front.server_timeout}",
        f"    timeout tunnel {TUNNEL}                 # a WebSocket, once upgraded",
        "    timeout queue 30s                 # a request waiting for a node's free connection",
        "    timeout check 2s",
        "",
        "frontend labnb",
        f"    bind {front.bind}:{front.port}{tls}",
        f"    maxconn {front.maxconn}",
        "    http-request del-header X-Forwarded-For     # a client's own is never passed on",
        f"    http-request set-var(txn.pinned) req.cook({COOKIE})   # read before the backend takes it out",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
    ]
    for n in nodes:   # a lab host's web service, by its node's prefix (webapp/labhost/records.py id_prefix)
        # exactly the names the node's gateway (HOST) reads as a web service: any other would reach its pages
        lines.append(f"    use_backend service_{n.name} if {{ req.hdr(host) -m reg "
                     f"^p[1-9][0-9]{{0,4}}-lh-{n.name}-[a-z0-9-]{{1,{HOST_MOST - len(n.name) - 4}}}"
                     f"\\\\.{domain}(:[0-9]{{1,5}})?$ }}")
    secure = " secure" if front.cert else ""
    # as labnb's session cookie: kept by the browser for session_days after the last request (renewed as
    # requests come), so a learner whose browser restarts comes back to the node that holds their lab host
    life = f" maxidle {int(front.session_days * 86400)}s attr Max-Age={int(front.session_days * 86400)}"
    lines += [
        "    default_backend labnb",
        "",
        "backend labnb",
        "    balance roundrobin",
        f"    cookie {COOKIE} insert indirect nocache httponly{secure}{life} attr SameSite=Lax",
        f"    stick-table type string len {PASS_LEN} size 100k expire 12h   # path-based passes: their node",
        f"    stick store-request path,field(4,/) if {{ path_beg {PATH_WAY} }} {{ var(txn.pinned) -m found }}",
        f"    stick match path,field(4,/) if {{ path_beg {PATH_WAY} }}",
        "    option persist                    # a node marked down by its agent keeps its learners while it answers",
        "    option redispatch 1               # ... and a dead node's go to another",
        "    retries 2",
        "    option forwardfor",
        "    option httpchk",
        f"    http-check send meth GET uri {HEALTH_PATH} ver HTTP/1.1 hdr Host localhost",
        "    http-check expect status 200",
        f"    default-server inter {front.check_every} fall 2 rise 2 maxconn {front.node_maxconn} weight {WEIGHT}",
    ]
    for n in nodes:
        agent = f" agent-check agent-port {n.agent} agent-inter {front.check_every}" if n.agent else ""
        lines.append(f"    server {n.name} {_address(n)} cookie {n.name} check{agent}")
    for n in nodes:   # the same nodes when every one above has weight 0 (all full): up, drained or down as above
        lines.append(f"    server {n.name}-full {_address(n)} cookie {n.name}-full backup track labnb/{n.name}")
    for n in nodes:
        lines += ["", f"backend service_{n.name}", "    option forwardfor",
                  f"    server {n.name} {_address(n)} maxconn {front.service_maxconn}"]
    return "\n".join(lines) + "\n"


def _address(node: Node) -> str:
    return f"[{node.host.strip('[]')}]:{node.port}" if ":" in node.host.strip("[]") else f"{node.host}:{node.port}"
