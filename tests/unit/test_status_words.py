"""How a run stands (webapp/status.py) and how a command ended (executor.Outcome)."""
from __future__ import annotations

import dataclasses

import pytest

from webapp import status
from webapp.executor.outcome import Outcome


@pytest.mark.parametrize("word, shown", [
    ("done", "done"), ("failed", "failed"), ("interrupted", "stopped"), ("timed_out", "timed out"),
    ("error", "error"), ("running", "running"), ("cut_off", "cut off by a server restart"), ("skipped", "skipped"),
])
def test_each_status_has_the_label_a_reader_sees(word, shown):
    assert status.label(word) == shown


def test_an_unknown_status_is_shown_as_it_is():
    assert status.label("paused") == "paused"


def test_a_stored_run_ends_as_one_of_the_finished_words_never_as_error():
    assert status.ERROR not in status.FINISHED and status.ERROR not in status.STORED
    assert set(status.FINISHED) < set(status.STORED) and {status.RUNNING, status.CUT_OFF} <= set(status.STORED)


def test_only_a_done_outcome_is_ok():
    assert Outcome(status.DONE, 0, None, 0.1).ok
    assert [s for s in (status.FAILED, status.INTERRUPTED, status.TIMED_OUT, status.ERROR)
            if Outcome(s, 0, None, 0.1).ok] == []


def test_an_outcome_is_frozen_and_has_no_error_by_default():
    outcome = Outcome(status.FAILED, 1, None, 2.5)
    assert outcome.error is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.status = status.DONE
