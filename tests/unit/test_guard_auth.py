"""The guard's parts that need no request (webapp/guard/auth.py): the secret key, the operator's token, the
Host names let in, and what a CSP may name."""
from __future__ import annotations

import os
import stat

import pytest

from webapp.guard.auth import CSP_HOST, LOOPBACK_NAMES, allowed_hosts, operator_token, secret_key


def test_a_secret_key_is_made_once_private_and_kept(tmp_path):
    state = tmp_path / "state"
    key = secret_key(str(state))
    assert len(key) == 32 and secret_key(str(state)) == key
    assert stat.S_IMODE(os.stat(state / "secret_key").st_mode) == 0o600


def test_a_short_secret_key_is_replaced(tmp_path):
    (tmp_path / "secret_key").write_bytes(b"short")
    key = secret_key(str(tmp_path))
    assert len(key) == 32 and (tmp_path / "secret_key").read_bytes() == key


def test_a_longer_secret_key_of_the_operators_is_kept_as_it_is(tmp_path):
    (tmp_path / "secret_key").write_bytes(b"k" * 64)
    assert secret_key(str(tmp_path)) == b"k" * 64


def test_two_state_dirs_have_two_keys(tmp_path):
    assert secret_key(str(tmp_path / "a")) != secret_key(str(tmp_path / "b"))


def test_the_operator_token_is_fixed_for_a_token_and_a_key():
    assert operator_token("t", b"k" * 32) == operator_token("t", b"k" * 32)
    assert len(operator_token("t", b"k" * 32)) == 48


def test_the_operator_token_changes_with_the_token_or_the_key():
    base = operator_token("t", b"k" * 32)
    assert base != operator_token("u", b"k" * 32) and base != operator_token("t", b"j" * 32)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", ""])
def test_a_server_on_every_address_takes_any_host(bind):
    assert allowed_hosts(bind) is None


def test_a_server_on_one_address_takes_it_and_the_loopback_names():
    assert allowed_hosts("192.0.2.5") == LOOPBACK_NAMES | {"192.0.2.5"}
    assert allowed_hosts("[2001:db8::5]") == LOOPBACK_NAMES | {"2001:db8::5"}
    assert allowed_hosts("127.0.0.1") == LOOPBACK_NAMES


@pytest.mark.parametrize("host, named", [
    ("localhost:5000", True), ("192.0.2.5", True), ("lab.example.org:8443", True),
    ("[::1]:5000", False), ("a b", False), ("x" * 254, False), ("host:123456", False), ("evil'; script-src *", False),
])
def test_a_csp_names_host_names_and_ipv4_addresses_only(host, named):
    assert bool(CSP_HOST.fullmatch(host)) is named
