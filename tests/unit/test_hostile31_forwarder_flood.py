"""A lab host that opens connections to its forwarder in a loop (each a ping, or a refused push) within its
LABNB_IMAGE_CONNECTIONS: every one cost the server's one forwarder thread an accept, a task, a parse and
an answer, some 4000 a second from two looping processes, a core of the server's for one learner, and
every other lab host's pulls waited behind them. Now a lab host's connections are accepted at most
``forwarder.ACCEPTS`` a second; the rest wait in its own kernel's backlog."""
from __future__ import annotations

import socket
import threading
import time

from webapp.images import forwarder

from test_forwarder_rules import ask, fake, forwarding, head  # noqa: F401 - fixtures

FLOOD = 3.0   # seconds lab host "a" floods


def test_a_lab_host_opening_connections_in_a_loop_is_accepted_a_few_a_second(forwarding):
    _fw, at = forwarding()
    answered: list[int] = []
    start = time.monotonic()

    def flood():
        while time.monotonic() < start + FLOOD:
            try:
                with socket.create_connection(at["a"], timeout=0.2) as s:
                    s.settimeout(0.2)
                    s.sendall(head("GET /v2/ HTTP/1.1"))
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        answered.append(1)
            except OSError:
                pass
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    assert ask(at["b"], head("GET /v2/ HTTP/1.1"))[0] == 200   # another lab host's meanwhile
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    # a second's worth saved up, then the rate; the backlog's and the answers in flight besides
    assert len(answered) <= forwarder.ACCEPTS * (elapsed + 1) + forwarder.BACKLOG, (len(answered), elapsed)
