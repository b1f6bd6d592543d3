"""The shares of the server one client may take (webapp/guard/limits.py), on a clock the tests move."""
from __future__ import annotations

import logging

import pytest

from webapp.config import Settings
from webapp.guard import limits
from webapp.guard.limits import (
    LabHostsPerAddress, NewLearners, Refusals, RunStarts, WrongCodes, client_address, plain_response,
)


@pytest.fixture
def moved(clock):
    return clock.into(limits)


@pytest.mark.parametrize("peer, client", [
    ("192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("unix:/run/labnb.sock", "unix:/run/labnb.sock"),
    ("", "an unknown address"),
])
def test_client_address(peer, client):
    assert client_address(peer) == client


def test_a_refusal_is_logged_once_a_minute_with_how_many_came_meanwhile(moved, caplog):
    refusals = Refusals()
    with caplog.at_level(logging.WARNING, logger=limits.log.name):
        refusals.log("a join", "192.0.2.1", "wrong code")
        moved.advance(10)
        refusals.log("a join", "192.0.2.1", "wrong code")
        refusals.log("a join", "192.0.2.1", "wrong code")
        assert len(caplog.records) == 1
        moved.advance(limits.LOG_EVERY)
        refusals.log("a join", "192.0.2.1", "wrong code")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a join from 192.0.2.1: wrong code",
        "refused a join from 192.0.2.1: wrong code (2 more like it in the last minute)",
    ]


def test_refusals_of_other_clients_or_reasons_are_each_logged(moved, caplog):
    refusals = Refusals()
    with caplog.at_level(logging.WARNING, logger=limits.log.name):
        refusals.log("a join", "192.0.2.1", "wrong code")
        refusals.log("a join", "192.0.2.2", "wrong code")
        refusals.log("a join", "192.0.2.1", "too many")
        refusals.log("a run", "192.0.2.1", "wrong code")
    assert len(caplog.records) == 4


def test_new_learners_per_address_within_the_window(moved):
    learners = NewLearners(per_address=2, window=3600, total=100, refusals=Refusals())
    assert learners.take("192.0.2.1") is None and learners.take("192.0.2.1") is None
    why = learners.take("192.0.2.1")
    assert why == ("2 new learners joined from 192.0.2.1 in the last 3600 s, the most "
                   "(LABNB_NEW_LEARNERS_PER_ADDRESS): go on in the browser you joined with, "
                   "or ask the operator to raise the limit")
    assert learners.take("192.0.2.2") is None


def test_new_learners_of_an_address_are_let_in_again_once_the_window_has_passed(moved):
    learners = NewLearners(per_address=1, window=60, total=100, refusals=Refusals())
    assert learners.take("192.0.2.1") is None
    moved.advance(59.9)
    assert learners.take("192.0.2.1") is not None
    moved.advance(0.1)
    assert learners.take("192.0.2.1") is None


def test_new_learners_in_all_are_bounded_for_the_server_run(moved):
    learners = NewLearners(per_address=10, window=60, total=3, refusals=Refusals())
    assert [learners.take(f"192.0.2.{n}") for n in range(3)] == [None] * 3
    moved.advance(3600)
    assert "has let in 3 new learners since it started" in learners.take("192.0.2.9")
    assert "LABNB_MAX_LEARNERS" in learners.take("192.0.2.9")


def test_a_refused_new_learner_is_not_counted(moved):
    learners = NewLearners(per_address=1, window=60, total=2, refusals=Refusals())
    learners.take("192.0.2.1")
    for _ in range(5):
        assert learners.take("192.0.2.1") is not None
    assert learners.take("192.0.2.2") is None   # the total counted one, not six


def test_a_wrong_code_is_403_and_the_right_one_passes(moved):
    codes = WrongCodes(per_address=3, window=3600, refusals=Refusals())
    assert codes.attempt("192.0.2.1", right=False) == (
        403, "that is not this workshop's access code: check it with the instructor")
    assert codes.attempt("192.0.2.1", right=True) is None


def test_right_codes_do_not_count_against_an_address(moved):
    codes = WrongCodes(per_address=1, window=3600, refusals=Refusals())
    for _ in range(5):
        assert codes.attempt("192.0.2.1", right=True) is None
    assert codes.attempt("192.0.2.1", right=False)[0] == 403


def test_past_the_wrong_codes_even_the_right_one_waits_out_the_window(moved):
    codes = WrongCodes(per_address=2, window=600, refusals=Refusals())
    codes.attempt("192.0.2.1", right=False)
    codes.attempt("192.0.2.1", right=False)
    status, why = codes.attempt("192.0.2.1", right=True)
    assert status == 429 and why.startswith("2 wrong access codes came from 192.0.2.1 in the last 600 s")
    assert "LABNB_JOIN_ATTEMPTS" in why
    moved.advance(600)
    assert codes.attempt("192.0.2.1", right=True) is None


def test_run_starts_are_counted_per_learner_per_minute(moved):
    starts = RunStarts(per_minute=2, refusals=Refusals())
    for _ in range(2):
        assert starts.refusal("ada", "192.0.2.1") is None
        starts.count("ada")
    why = starts.refusal("ada", "192.0.2.1")
    assert why.startswith("2 runs were started in the last minute") and "LABNB_RUNS_PER_MINUTE" in why
    assert starts.refusal("bob", "192.0.2.1") is None
    moved.advance(60)
    assert starts.refusal("ada", "192.0.2.1") is None


def test_a_run_refused_or_not_started_is_not_counted(moved):
    starts = RunStarts(per_minute=1, refusals=Refusals())
    for _ in range(3):
        assert starts.refusal("ada", "192.0.2.1") is None   # asked, never counted


@pytest.mark.parametrize("given, max_lab_hosts, most", [(0, 64, 16), (0, 3, 1), (0, 8, 2), (5, 64, 5)])
def test_lab_hosts_per_address_default_to_a_quarter_of_all_at_least_one(given, max_lab_hosts, most):
    per = LabHostsPerAddress(Settings(lab_hosts_per_address=given, max_lab_hosts=max_lab_hosts), Refusals())
    assert per.most == most
    assert per.refusal("192.0.2.1", most - 1) is None and per.refusal("192.0.2.1", most) is not None


def test_a_lab_host_refusal_says_when_one_is_given_back_and_what_the_operator_can_raise():
    why = LabHostsPerAddress(Settings(lab_hosts_per_address=2, idle_minutes=30), Refusals()).refusal("192.0.2.1", 2)
    assert "the learners at 192.0.2.1 hold 2 lab hosts" in why
    assert "after 30 min with no activity" in why and "LABNB_LAB_HOSTS_PER_ADDRESS=2" in why


def test_without_an_idle_limit_a_lab_host_refusal_sends_the_learner_to_the_operator():
    why = LabHostsPerAddress(Settings(lab_hosts_per_address=1, idle_minutes=0), Refusals()).refusal("192.0.2.1", 1)
    assert "hold 1 lab host," in why and "or ask the operator" in why and "no activity" not in why


def test_a_plain_refusal_from_wsgi_middleware():
    started = []
    body = plain_response(lambda status, headers: started.append((status, dict(headers))), "429 Too Many Requests",
                          "too many WebSockets")
    assert body == [b"too many WebSockets\n"]
    status, headers = started[0]
    assert status == "429 Too Many Requests" and headers["Content-Length"] == str(len(body[0]))
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
