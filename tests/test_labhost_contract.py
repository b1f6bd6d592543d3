"""The lab host interface's promises (``tests/unit/test_backend_contract.py``) on the backends that need
root or this machine's spawner: the plain backend and the sandbox one."""
from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.append(str(pathlib.Path(__file__).with_name("unit")))   # where the fast tier keeps the contract

from test_backend_contract import (ROOT_TIER, test_a_signal_ends_the_command_and_wait_says_how,  # noqa: E402,F401
                                   test_an_abandoned_command_counts_as_killed,
                                   test_capture_ends_a_job_at_its_deadline,
                                   test_capture_keeps_a_bounded_head_and_tail_of_each_stream,
                                   test_output_is_read_whole_after_the_command_ended,
                                   test_the_deadline_holds_for_a_job_that_closed_its_output,
                                   test_typed_input_is_refused_while_the_bound_is_unread,
                                   test_typed_input_past_the_bound_is_refused_whole)


@pytest.fixture(params=sorted(ROOT_TIER))
def host(request):
    """The plain lab host, or the module's sandbox one (``lab_host``, tests/conftest.py)."""
    return request.getfixturevalue("plain" if request.param == "plain" else "lab_host")
