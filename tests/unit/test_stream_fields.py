"""The field kinds of Socket.IO payloads (webapp/stream/events.py): every payload is untrusted."""
from __future__ import annotations

import pytest

from webapp.stream.fields import MAX_NAME, MAX_POSITION, POSITION, SEQ, BadEvent, Int, Name, RunId, Text
from webapp.stream.protocol import Event


def fields(data, spec):
    """A tab's payload read as an event declaring ``spec`` reads it."""
    return Event("probe", spec, "a test's event").read(data)

RUN = "0123456789abcdef" * 2


@pytest.mark.parametrize("value", ["a", "x" * MAX_NAME, "01-network-modes", "é"])
def test_a_name_takes_text_of_1_to_200_characters(value):
    assert Name().check("lab", value) == value


@pytest.mark.parametrize("value", ["", "x" * (MAX_NAME + 1), None, 7, ["a"], {"a": 1}, True])
def test_a_name_refuses_what_is_not_such_text(value):
    with pytest.raises(BadEvent, match="lab: expected a name of 1 to 200 characters"):
        Name().check("lab", value)


def test_an_optional_name_may_be_absent_but_not_empty():
    assert Name(optional=True).check("step", None) is None
    with pytest.raises(BadEvent):
        Name(optional=True).check("step", "")


@pytest.mark.parametrize("value", [RUN.upper(), RUN[:-1], RUN + "0", "g" * 32, None, 12, "'; --" + RUN[5:]])
def test_a_run_id_is_32_lowercase_hex_digits(value):
    assert RunId().check("run", RUN) == RUN
    with pytest.raises(BadEvent, match=r"run: expected a run id \(32 hex digits\)"):
        RunId().check("run", value)


def test_an_int_takes_its_range_inclusive():
    kind = Int(1, 5)
    assert [kind.check("n", v) for v in (1, 5)] == [1, 5]
    for bad in (0, 6):
        with pytest.raises(BadEvent, match="n: expected an integer from 1 to 5"):
            kind.check("n", bad)


@pytest.mark.parametrize("value", [True, False, 2.0, "3", [3]])
def test_an_int_refuses_booleans_floats_and_text(value):
    with pytest.raises(BadEvent):
        Int(0, 10).check("n", value)


def test_an_absent_int_takes_its_default_or_is_refused_without_one():
    assert Int(0, 10, default=4).check("n", None) == 4
    with pytest.raises(BadEvent):
        Int(0, 10).check("n", None)


def test_seq_and_position_bounds():
    assert SEQ.check("seq", -1) == -1 and POSITION.check("pos", MAX_POSITION) == MAX_POSITION
    with pytest.raises(BadEvent):
        POSITION.check("pos", -1)
    with pytest.raises(BadEvent):
        SEQ.check("seq", MAX_POSITION + 1)


def test_text_becomes_its_utf8_bytes():
    assert Text(16).check("data", "ls é\n") == "ls é\n".encode()


def test_a_lone_surrogate_in_text_becomes_a_question_mark():
    assert Text(16).check("data", "a\udc80b") == b"a?b"


def test_text_is_bounded_in_bytes_not_characters():
    assert Text(4).check("data", "éé") == "éé".encode()
    with pytest.raises(BadEvent, match="data: at most 4 bytes per event; send a long paste in parts"):
        Text(4).check("data", "ééé")


def test_text_refuses_what_is_not_a_string():
    with pytest.raises(BadEvent, match="data: expected a string"):
        Text(4).check("data", b"ls")


def test_fields_come_in_the_order_of_the_spec_checked():
    spec = {"lab": Name(), "step": Name(optional=True), "after": SEQ}
    assert fields({"after": 3, "lab": "l", "extra": "ignored"}, spec) == ["l", None, 3]


def test_fields_of_a_payload_that_is_not_an_object_say_what_was_expected():
    with pytest.raises(BadEvent, match="expected an object with lab, step, got list"):
        fields(["l", "s"], {"lab": Name(), "step": Name()})


def test_fields_stop_at_the_first_bad_one_and_name_it():
    with pytest.raises(BadEvent, match="^run: "):
        fields({"lab": "l", "run": "nope"}, {"lab": Name(), "run": RunId()})
