"""What the tabs of one terminal see (webapp/shells/fanout.py): the backlog, each tab's window, the catch-up
of a tab that fell behind, and the credit its PTY gets."""
from __future__ import annotations

import pytest

from webapp.shells import fanout as fanout_module
from webapp.shells.fanout import BACKLOG, TAB_WINDOW, Fanout


class Tabs:
    """The ``emit`` of a fanout: what each tab was sent."""

    def __init__(self):
        self.sent: list[tuple[str, dict, str]] = []

    def __call__(self, event, payload, to):
        self.sent.append((event, payload, to))

    def of(self, sid, event="shell_output"):
        return [p for e, p, to in self.sent if to == sid and e == event]

    def data(self, sid) -> bytes:
        return b"".join(p["data"] for p in self.of(sid))


@pytest.fixture
def tabs():
    return Tabs()


@pytest.fixture
def credited():
    return []


@pytest.fixture
def fanout(tabs, credited):
    s = Fanout(tabs, term="b1")
    s.credit.attach(credited.append)
    return s


def test_a_tab_that_joins_gets_the_backlog_marked_replay_then_live_output(fanout, tabs):
    fanout.feed(b"$ ls\r\n")
    fanout.join("t1", running=True)
    fanout.feed(b"a b\r\n")
    first, live = tabs.of("t1")
    assert first == {"term": "b1", "data": b"$ ls\r\n", "end": 6, "replay": True}
    assert live == {"term": "b1", "data": b"a b\r\n", "end": 11}


def test_a_tab_joining_an_empty_terminal_gets_an_empty_replay(fanout, tabs):
    fanout.join("t1", running=True)
    assert tabs.of("t1") == [{"term": "b1", "data": b"", "end": 0, "replay": True}]


def test_a_tab_joining_a_terminal_whose_process_ended_hears_so(fanout, tabs):
    fanout.join("t1", running=False)
    assert tabs.of("t1", "shell_exit") == [{"term": "b1"}]


def test_every_tab_hears_the_end(fanout, tabs):
    fanout.join("t1", running=True)
    fanout.join("t2", running=True)
    fanout.ended()
    assert tabs.of("t1", "shell_exit") == tabs.of("t2", "shell_exit") == [{"term": "b1"}]


def test_a_cut_replay_starts_on_a_line_of_its_own(fanout, tabs):
    fanout.feed(b"old line\n" * 8000)   # 72,000 bytes: the backlog starts inside a line
    fanout.join("t1", running=True)
    (replay,) = tabs.of("t1")
    assert replay["data"].startswith(b"old line\n") and len(replay["data"]) == BACKLOG - len(b"d line\n")
    assert replay["end"] == fanout.total == 72_000


def test_a_cut_replay_without_a_line_end_near_its_start_is_kept_whole(fanout, tabs):
    """A line end is looked for in the replay's first 4 KiB only: past them, a long line is shown cut."""
    fanout.feed(b"z" * 200 + b"x" * 5000 + b"\n" + b"y" * (BACKLOG - 5001))
    fanout.join("t1", running=True)
    replay = tabs.of("t1")[0]["data"]
    assert len(replay) == BACKLOG and replay.startswith(b"x" * 5000 + b"\n")


def test_with_no_tab_the_pty_is_credited_with_everything(fanout, credited):
    fanout.feed(b"12345")
    fanout.feed(b"678")
    assert sum(credited) == 8


def test_with_tabs_the_pty_is_credited_as_far_as_the_furthest_tab(fanout, credited):
    fanout.join("slow", running=True)
    fanout.join("fast", running=True)
    fanout.feed(b"0123456789")
    assert credited == []
    fanout.ack("slow", 3)
    fanout.ack("fast", 7)
    fanout.ack("slow", 9)
    assert sum(credited) == 9


def test_a_tab_leaving_lets_the_rest_be_credited(fanout, credited):
    fanout.join("t1", running=True)
    fanout.feed(b"abc")
    assert credited == []
    fanout.leave("t1")
    assert sum(credited) == 3 and fanout.unwatched_since is not None


def test_a_foreign_line_is_shown_but_never_credited(fanout, tabs, credited):
    fanout.feed(b"own")
    fanout.feed(b"[a note of the server's]", own=False)
    fanout.feed(b"more")
    assert sum(credited) == 7
    fanout.join("t1", running=True)
    assert tabs.data("t1") == b"own[a note of the server's]more"


def test_acks_inside_a_foreign_range_credit_only_the_own_bytes_before_it(fanout, credited):
    fanout.join("t1", running=True)
    fanout.feed(b"ab")
    fanout.feed(b"NOTE", own=False)
    fanout.feed(b"cd")
    fanout.ack("t1", 4)
    assert sum(credited) == 2
    fanout.ack("t1", 8)
    assert sum(credited) == 4


def test_a_tab_a_window_behind_is_sent_nothing_live(fanout, tabs):
    fanout.join("t1", running=True)
    tabs.sent.clear()
    fanout.tabs["t1"].window = 10
    fanout.feed(b"0123456789")
    fanout.feed(b"late")
    assert tabs.data("t1") == b"0123456789"


def test_a_tab_that_acknowledges_catches_up_from_the_backlog(fanout, tabs):
    fanout.join("t1", running=True)
    fanout.tabs["t1"].window = 4
    fanout.feed(b"0123")
    fanout.feed(b"4567")
    fanout.ack("t1", 4)
    assert tabs.data("t1") == b"01234567" and tabs.of("t1")[-1]["end"] == 8


def test_live_output_never_skips_what_a_tab_was_not_sent(fanout, tabs, monkeypatch):
    """A tab behind (with room again, but not yet caught up) gets the next output only through its catch-up."""
    monkeypatch.setattr(fanout_module, "TAB_WINDOW", 4)   # catch up below half of it
    fanout.join("t1", running=True)
    fanout.tabs["t1"].window = 4
    fanout.feed(b"0123")
    fanout.feed(b"4567")    # no room: not sent
    fanout.ack("t1", 1)     # room again, but 3 in flight: no catch-up yet
    fanout.feed(b"89")
    assert tabs.data("t1") == b"0123"
    fanout.ack("t1", 4)
    assert tabs.data("t1") == b"0123456789"
    assert [p["end"] for p in tabs.of("t1")] == [0, 4, 10]


def test_a_tab_that_fell_past_the_backlog_is_told_what_it_missed(fanout, tabs):
    fanout.join("t1", running=True)
    fanout.tabs["t1"].window = 1
    fanout.feed(b"a")
    fanout.feed(b"b" * (BACKLOG + 10))
    fanout.ack("t1", 1)
    note, rest = tabs.of("t1")[-2:]
    assert b"[labnb: 10 bytes of output skipped: this tab fell behind]" in note["data"] and note["end"] == 11
    assert rest["data"] == b"b" * BACKLOG and rest["end"] == fanout.total


def test_an_ack_of_an_unknown_tab_is_ignored(fanout, credited):
    fanout.ack("nobody", 10)
    assert credited == []


def test_output_is_a_sign_that_the_terminal_works(fanout):
    fed = []
    fanout.on_feed = lambda: fed.append(1)
    fanout.feed(b"")
    fanout.feed(b"x")
    assert fed == [1]


def test_the_window_of_a_tab_is_the_fanouts(fanout):
    fanout.join("t1", running=True)
    assert fanout.tabs["t1"].window == TAB_WINDOW and fanout.unwatched_since is None
