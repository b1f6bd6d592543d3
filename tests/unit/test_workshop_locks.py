"""The workshop's room and the learners take their locks in one order (issue 30's stall).

A learner's first lab page claims their lab host under the learners' lock and asks the room whether they
are seated (``Learners.get`` -> ``RoomAdmission.admits`` -> the room's lock). The push loop's ``expire``
asks whether each seated learner's command runs (``Workshop.busy`` -> the learners' lock); asked under the
room's lock, the two waited for each other, and every request after them for ever: a room of 30 joining
at once (bench/workshop.py 30) got no page at all. Here the two meet on purpose, in that order: the
objects are the app's, built without it, so that a deadlock fails the test instead of hanging its end.
"""
from __future__ import annotations

import threading
import types

from apps import WAIT
from webapp.config import Settings
from webapp.learners.registry import Learners
from webapp.workshop.manager import RoomAdmission, Workshop
from webapp.workshop.room import Room

CODE = "unit0-code0"


class Pool:
    """Lab hosts at once: the claim is not what this test is about."""

    def claim(self):
        return types.SimpleNamespace(id="lh-test")

    def release(self, host) -> None:
        pass


def test_a_learners_first_claim_and_the_rooms_expiry_do_not_wait_for_each_other():
    room = Room(3)
    admission = RoomAdmission(room, "mark", "operator-mark")
    learners = Learners(Pool(), admission)
    workshop = Workshop(Settings(access_code=CODE, token="token"), {}, admission, None, None, None, None,
                        learners, None)
    for learner_id in ("ada", "bo", "cy"):   # seated; none has a lab host yet
        room.join(learner_id, learner_id)
    expiring, asked, go = threading.Event(), threading.Event(), threading.Event()

    def busy(learner_id: str) -> bool:   # the expiry's first question waits until Cy's claim asks the room
        if not expiring.is_set():
            expiring.set()
            go.wait()
        return Workshop.busy(workshop, learner_id)

    def admits(learner_id: str):   # asked under the learners' lock
        asked.set()
        return RoomAdmission.admits(admission, learner_id)

    workshop.busy, admission.admits = busy, admits
    expirer = threading.Thread(target=workshop.expire, daemon=True)
    claimer = threading.Thread(target=learners.get, args=("cy",), daemon=True)
    expirer.start()
    assert expiring.wait(WAIT), "the expiry did not ask who is busy"
    claimer.start()
    assert asked.wait(WAIT), "Cy's claim did not ask the room"
    go.set()
    for thread, what in ((expirer, "the room's expiry"), (claimer, "Cy's first claim of a lab host")):
        thread.join(WAIT)
        assert not thread.is_alive(), f"{what} waits for the other's lock: a deadlock"
    assert learners.peek("cy") is not None
