"""Every per-address limit counts an IPv6 client by its /64: one machine may hold a whole /64 and use a
new address for each request, and so passed the limits on new learners, wrong access codes, WebSockets,
lab hosts and proxy connections per address (each keyed by the raw peer address), while the request-head
reader (webapp/commands/heads.py) already counted the /64. One rule now, ``limits.client_address``."""
from __future__ import annotations

from webapp.guard.limits import NewLearners, Refusals, WrongCodes, client_address


def test_the_addresses_of_one_ipv6_network_are_one_client_for_the_limits():
    new_learners = NewLearners(per_address=2, window=3600, total=100, refusals=Refusals())
    taken = [new_learners.take(client_address(f"2001:db8:1:2::{n:x}")) for n in range(1, 6)]
    assert taken[:2] == [None, None] and all(why and "LABNB_NEW_LEARNERS_PER_ADDRESS" in why for why in taken[2:])
    assert new_learners.take(client_address("2001:db8:1:3::1")) is None   # another network is another client


def test_wrong_access_codes_from_one_ipv6_network_are_counted_together():
    codes = WrongCodes(per_address=3, window=3600, refusals=Refusals())
    for n in range(3):
        assert codes.attempt(client_address(f"2001:db8:7:7::{n + 1:x}"), right=False)[0] == 403
    assert codes.attempt(client_address("2001:db8:7:7::abcd"), right=True)[0] == 429   # the right code, too late
    assert codes.attempt(client_address("2001:db8:7:8::1"), right=True) is None


def test_ipv4_addresses_stay_themselves():
    assert client_address("192.0.2.7") == client_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_address("192.0.2.8") != client_address("192.0.2.7")
    assert client_address(None) == "an unknown address"
