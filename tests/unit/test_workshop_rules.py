"""A workshop room's rules (webapp/workshop/room.py), on a clock the tests move: places and the queue, the
times a place ends at, hands, the banner, and a room continued after a restart."""
from __future__ import annotations

import json

import pytest

from webapp.workshop import room as room_module
from webapp.workshop.room import (
    ENDED, GONE, IDLE, LEFT, SEATED, TIME_UP, WAITING, Room, RoomError, Times, clean_message, clean_name,
)

ADA, BOB, CY, DEE = "a" * 32, "b" * 32, "c" * 32, "d" * 32


@pytest.fixture
def moved(clock):
    return clock.into(room_module)


def never_busy(_learner):
    return False


# -- names and messages ------------------------------------------------------------------

@pytest.mark.parametrize("raw, name", [("Ada", "Ada"), ("  Ada   Lovelace ", "Ada Lovelace"), ("A\x00d\x1ba", "Ada"),
                                       ("Zoë\u200b", "Zoë"), ("x" * 40, "x" * 40)])
def test_a_name_is_printable_with_spaces_collapsed(raw, name):
    assert clean_name(raw) == name


@pytest.mark.parametrize("raw, why", [("", "type a name"), (" \t\n", "type a name"), ("\x07", "type a name"),
                                      ("x" * 41, "at most 40 characters")])
def test_a_name_must_be_there_and_short(raw, why):
    with pytest.raises(RoomError, match=why):
        clean_name(raw)


def test_a_message_turns_control_characters_into_spaces():
    assert clean_message("line one\nline\ttwo  ") == "line one line two"
    assert clean_message("") == ""
    with pytest.raises(RoomError, match="at most 500 characters"):
        clean_message("x" * 501)


# -- places and the queue ------------------------------------------------------------------

def test_a_room_needs_a_place():
    with pytest.raises(RoomError, match="LABNB_CAPACITY"):
        Room(0)


def test_learners_are_seated_until_the_room_is_full_then_queued_in_order(moved):
    room = Room(2)
    states = [room.join(who, name).state for who, name in ((ADA, "Ada"), (BOB, "Bob"), (CY, "Cy"), (DEE, "Dee"))]
    assert states == [SEATED, SEATED, WAITING, WAITING]
    assert [room.position(w) for w in (ADA, CY, DEE)] == [0, 1, 2]
    assert room.counts() == {"capacity": 2, "seated": 2, "waiting": 2}


def test_a_freed_place_goes_to_the_first_who_waits(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    room.join(CY, "Cy")
    assert room.end(ADA, LEFT) == [BOB]
    assert room.get(BOB).state == SEATED and room.position(CY) == 1


def test_one_who_stops_waiting_leaves_the_queue_and_seats_nobody(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    room.join(CY, "Cy")
    assert room.end(BOB, LEFT) == []
    assert room.get(BOB).state == ENDED and room.position(CY) == 1


def test_joining_again_while_seated_changes_nothing(moved):
    room = Room(1)
    first = room.join(ADA, "Ada")
    assert room.join(ADA, "Someone else") is first and room.get(ADA).name == "Ada"
    assert room.counts()["seated"] == 1


def test_ending_an_ended_place_again_seats_nobody(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.end(ADA, LEFT)
    room.join(BOB, "Bob")
    room.join(CY, "Cy")
    assert room.end(ADA, LEFT) == [] and room.get(CY).state == WAITING


def test_ending_a_stranger_is_an_error():
    with pytest.raises(RoomError, match="no such learner"):
        Room(1).end(ADA, LEFT)


@pytest.mark.parametrize("why", [LEFT, IDLE, GONE])
def test_one_who_left_idled_or_went_may_take_a_place_again(moved, why):
    room = Room(1, Times(duration=3600))
    room.join(ADA, "Ada")
    room.end(ADA, why)
    assert room.join(ADA, "Ada").state == SEATED


@pytest.mark.parametrize("why, said", [("time", "your time in the workshop is up"),
                                       ("instructor", "the instructor ended it")])
def test_one_whose_time_ran_out_or_whom_the_instructor_ended_may_not(moved, why, said):
    room = Room(1)
    room.join(ADA, "Ada")
    room.end(ADA, why)
    with pytest.raises(RoomError, match=f"has ended \\({said}\\) and cannot be taken again"):
        room.join(ADA, "Ada")


def test_one_who_comes_back_has_the_time_they_had_left_not_a_fresh_place(moved):
    room = Room(1, Times(duration=600))
    room.join(ADA, "Ada")
    seated = room.get(ADA).seated
    moved.advance(300)
    room.end(ADA, LEFT)
    moved.advance(200)   # the time away counts
    back = room.join(ADA, "Ada")
    assert back.seated == seated and room.time_left(back, busy=False)["time_left_s"] == 100


def test_leaving_just_before_the_end_and_coming_back_after_it_is_refused(moved):
    room = Room(1, Times(duration=600))
    room.join(ADA, "Ada")
    moved.advance(599)
    room.end(ADA, LEFT)
    moved.advance(5)
    with pytest.raises(RoomError, match="your time in the workshop is up"):
        room.join(ADA, "Ada")


def test_one_who_comes_back_to_a_full_room_waits_at_the_end_of_the_queue(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.end(ADA, LEFT)
    room.join(BOB, "Bob")
    room.join(CY, "Cy")
    assert room.join(ADA, "Ada").state == WAITING and room.position(ADA) == 2


def test_a_comer_back_keeps_when_they_first_joined(moved):
    room = Room(1)
    joined = room.join(ADA, "Ada").joined
    room.end(ADA, LEFT)
    moved.advance(50)
    assert room.join(ADA, "Ada").joined == joined


def test_closing_the_workshop_ends_every_place_and_wait_and_refuses_newcomers(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    assert room.close() == [ADA, BOB]
    assert {p.state for p in room.places()} == {ENDED} and room.get(BOB).why == "workshop"
    with pytest.raises(RoomError, match="this workshop is over"):
        room.join(CY, "Cy")


def test_listeners_hear_who_changed(moved):
    room, heard = Room(1), []
    room.on_change(heard.append)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    room.end(ADA, LEFT)
    room.broadcast("hello")
    assert heard == [[ADA], [BOB], [ADA, BOB], None]


def test_members_are_copies_in_the_order_they_joined(moved):
    room = Room(2)
    room.join(BOB, "Bob")
    moved.advance(1)
    room.join(ADA, "Ada")
    room.raise_hand(BOB, "help")
    places = room.places()
    assert [p.id for p in places] == [BOB, ADA]
    places[0].name, places[0].hand.message = "Mallory", "changed"
    assert room.get(BOB).name == "Bob" and room.get(BOB).hand.message == "help"


def test_public_shows_why_a_place_ended_in_words(moved):
    room = Room(1)
    room.join(ADA, "Ada", address="192.0.2.1")
    room.end(ADA, IDLE)
    shown = room.get(ADA).public()
    assert shown["ended_because"] == "you were away too long (no visible tab, no running command)"
    assert shown["place"] == ENDED and shown["address"] == "192.0.2.1" and shown["hand"] is None


# -- times ---------------------------------------------------------------------------

def test_times_from_settings_are_in_seconds():
    from webapp.config import Settings
    times = Times.from_settings(Settings(max_minutes=60, idle_minutes=10, gone_minutes=5, warn_minutes=2,
                                         extend_minutes=15, extend_most_minutes=30))
    assert times == Times(3600, 600, 300, 120, 900, 1800)


def test_a_place_ends_at_the_soonest_of_its_ends(moved):
    room = Room(1, Times(duration=600, idle=300, gone=100))
    place = room.join(ADA, "Ada")
    assert place.ending(room.times, busy=False) == (moved.now + 100, GONE)
    room.touch(ADA)
    moved.advance(50)
    room.touch(ADA, active=False)   # a tab is open, hidden
    assert place.ending(room.times, busy=False) == (moved.now + 100, GONE)


def test_a_running_command_keeps_a_learner_from_being_idle_or_gone_but_not_past_their_time(moved):
    room = Room(1, Times(duration=600, idle=60, gone=60))
    place = room.join(ADA, "Ada")
    assert place.ending(room.times, busy=True) == (place.seated + 600, TIME_UP)


def test_without_limits_a_place_never_ends(moved):
    room = Room(1, Times())
    place = room.join(ADA, "Ada")
    assert place.ending(room.times, busy=False) is None
    assert room.time_left(place, busy=False) == {"time_left_s": None, "ends_in_s": None, "why": None,
                                                  "warn": False, "can_extend_s": 0}


def test_expire_warns_once_before_the_end_then_ends_and_seats_the_next(moved):
    room = Room(1, Times(duration=600, warn=60))
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    moved.advance(539)
    assert room.expire(never_busy) == ([], [])
    moved.advance(1)
    assert room.expire(never_busy) == ([], [ADA])
    assert room.expire(never_busy) == ([], [])      # warned of this end already
    moved.advance(60)
    assert room.expire(never_busy) == ([(ADA, TIME_UP)], [])
    assert room.get(BOB).state == SEATED and room.get(ADA).why == TIME_UP


def test_an_end_moved_later_is_warned_of_again(moved):
    room = Room(1, Times(duration=600, warn=60))
    room.join(ADA, "Ada")
    moved.advance(550)
    assert room.expire(never_busy)[1] == [ADA]
    room.extend(ADA, 30)   # the instructor's: the end is another one
    moved.advance(30)
    assert room.expire(never_busy)[1] == [ADA]


def test_an_idle_learner_is_ended_as_idle_unless_busy(moved):
    room = Room(2, Times(idle=120, warn=30))
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    moved.advance(120)
    ended, _ = room.expire(lambda learner: learner == BOB)
    assert ended == [(ADA, IDLE)] and room.get(BOB).state == SEATED


def test_activity_moves_the_idle_end(moved):
    room = Room(1, Times(idle=120, warn=30))
    room.join(ADA, "Ada")
    moved.advance(100)
    room.touch(ADA)
    moved.advance(80)   # 180 s after joining: idle for 80 s only
    assert room.expire(never_busy) == ([], [])


def test_a_hidden_tab_is_a_sign_of_presence_but_not_of_activity(moved):
    room = Room(1, Times(idle=120, gone=60, warn=10))
    room.join(ADA, "Ada")
    for _ in range(3):
        moved.advance(50)
        room.touch(ADA, active=False)
    assert room.expire(never_busy)[0] == [(ADA, IDLE)]


def test_touching_a_stranger_is_harmless(moved):
    Room(1).touch(ADA)


def test_time_left_shows_the_countdown_and_the_soonest_end(moved):
    room = Room(1, Times(duration=600, idle=120, warn=60, extend=300, extend_most=600))
    place = room.join(ADA, "Ada")
    moved.advance(70)
    assert room.time_left(place, busy=False) == {"time_left_s": 530, "ends_in_s": 50, "why": IDLE, "warn": True,
                                                  "can_extend_s": 0}
    assert room.time_left(place, busy=True) == {"time_left_s": 530, "ends_in_s": 530, "why": TIME_UP,
                                                 "warn": False, "can_extend_s": 300}


def test_a_learner_extends_within_what_they_may_add_in_all(moved):
    room = Room(1, Times(duration=600, extend=300, extend_most=500))
    room.join(ADA, "Ada")
    room.extend(ADA)
    room.extend(ADA)
    assert room.get(ADA).added == 500
    assert room.time_left(room.get(ADA), busy=True)["can_extend_s"] == 0
    with pytest.raises(RoomError, match="cannot be extended further: ask the instructor"):
        room.extend(ADA)


def test_a_place_without_a_duration_cannot_be_extended_by_the_learner(moved):
    room = Room(1, Times(idle=60))
    room.join(ADA, "Ada")
    with pytest.raises(RoomError, match="cannot be extended"):
        room.extend(ADA)


def test_the_instructor_adds_or_takes_time_without_limit(moved):
    room = Room(1, Times(duration=600, extend_most=0))
    place = room.join(ADA, "Ada")
    room.extend(ADA, 3600)
    room.extend(ADA, -600)
    assert place.granted == 3000 and room.time_left(place, busy=True)["time_left_s"] == 3600
    assert place.public()["extended_s"] == 3000


def test_only_a_seated_learner_is_extended(moved):
    room = Room(1, Times(duration=600))
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    with pytest.raises(RoomError, match="no place in the room now"):
        room.extend(BOB, 60)


# -- hands and the banner --------------------------------------------------------------------

def test_a_hand_is_raised_seen_once_and_lowered(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.raise_hand(ADA, "  stuck\non step 3 ")
    assert room.get(ADA).hand.message == "stuck on step 3" and room.get(ADA).hand.seen is None
    room.see_hand(ADA)
    seen = room.get(ADA).hand.seen
    moved.advance(10)
    room.see_hand(ADA)
    assert room.get(ADA).hand.seen == seen
    room.lower_hand(ADA)
    assert room.get(ADA).hand is None
    with pytest.raises(RoomError, match="hand is not raised"):
        room.see_hand(ADA)


def test_a_waiting_learner_cannot_raise_a_hand(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    with pytest.raises(RoomError, match="no place in the room now"):
        room.raise_hand(BOB, "let me in")


def test_a_place_that_ends_takes_its_hand_down(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.raise_hand(ADA, "help")
    room.end(ADA, LEFT)
    assert room.get(ADA).hand is None


def test_a_banner_shows_until_each_learner_dismisses_it(moved):
    room = Room(2)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    room.broadcast("lunch at noon")
    banner = room.banner_for(ADA)
    assert banner["text"] == "lunch at noon"
    room.dismiss(ADA, banner["id"])
    assert room.banner_for(ADA) is None and room.banner_for(BOB) == banner
    room.broadcast("back at one")
    assert room.banner_for(ADA)["text"] == "back at one"


def test_a_banner_needs_text_and_may_be_cleared(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    with pytest.raises(RoomError, match="type the message"):
        room.broadcast(" \n ")
    room.broadcast("hi")
    room.clear_banner()
    assert room.banner_for(ADA) is None and room.banner is None


def test_an_old_dismissal_does_not_hide_a_newer_banner(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.broadcast("one")
    room.broadcast("two")
    room.dismiss(ADA, room.banner["id"])
    room.dismiss(ADA, 1)
    assert room.get(ADA).dismissed == 2 and room.banner_for(ADA) is None


def test_a_stranger_has_no_banner():
    room = Room(1)
    room.broadcast("hi")
    assert room.banner_for(ADA) is None


# -- resume links ----------------------------------------------------------------------------

def test_a_resume_nonce_is_spent_once(moved):
    room = Room(1)
    assert not room.spent("n1")
    assert room.spend("n1", 900) and room.spent("n1")
    assert not room.spend("n1", 900)


def test_an_empty_nonce_is_never_good(moved):
    room = Room(1)
    assert room.spent("") and not room.spend("", 900)


def test_a_spent_nonce_is_forgotten_once_its_link_has_expired(moved):
    room = Room(1)
    room.spend("n1", 900)
    moved.advance(900)
    room.spend("n2", 900)
    assert "n1" not in room.state()["spent"] and "n2" in room.state()["spent"]


# -- across restarts -----------------------------------------------------------------------------

def restarted(room: Room, capacity: int | None = None) -> Room:
    again = Room(capacity or room.capacity, room.times)
    again.restore(json.loads(json.dumps(room.state())))
    return again


def test_state_leaves_out_the_last_signs_of_learners(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    (saved,) = room.state()["members"]
    assert "active" not in saved and "seen" not in saved and saved["name"] == "Ada"


def test_after_a_restart_nobody_is_idle_for_the_time_the_server_was_down(moved):
    room = Room(1, Times(duration=3600, idle=300, warn=10))
    room.join(ADA, "Ada")
    state = json.loads(json.dumps(room.state()))
    moved.advance(1000)   # down for longer than the idle limit
    again = Room(1, room.times)
    again.restore(state)
    assert again.expire(never_busy) == ([], [])
    assert again.time_left(again.get(ADA), busy=True)["time_left_s"] == 2600   # but the time down counts


def test_a_closed_workshop_stays_closed_after_a_restart(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.close()
    with pytest.raises(RoomError, match="over"):
        restarted(room).join(BOB, "Bob")


def test_restore_keeps_only_waiting_learners_in_the_queue(moved):
    room = Room(1)
    room.join(ADA, "Ada")
    room.join(BOB, "Bob")
    state = room.state()
    state["queue"] = [ADA, BOB, "f" * 32]   # a seated one and a stranger: not waiting
    again = Room(1)
    again.restore(state)
    assert again.position(BOB) == 1 and again.counts() == {"capacity": 1, "seated": 1, "waiting": 1}


def test_a_state_it_cannot_read_raises(moved):
    with pytest.raises((TypeError, ValueError, KeyError)):
        Room(1).restore({"members": [{"id": ADA}]})


def test_an_empty_state_is_an_empty_room(moved):
    room = Room(3)
    room.restore({})
    assert room.places() == [] and room.counts() == {"capacity": 3, "seated": 0, "waiting": 0}
