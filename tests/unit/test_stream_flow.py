"""Flow control (webapp/stream/flow.py): a tab's window, and the one credit a stream's producer gets."""
from __future__ import annotations

import threading

from webapp.stream.flow import Credit, Reader


def test_a_new_reader_has_room_and_nothing_in_flight():
    tab = Reader("sid", window=10)
    assert (tab.sent, tab.acked, tab.in_flight, tab.has_room) == (0, 0, 0, True)


def test_a_reader_a_window_behind_has_no_room():
    tab = Reader("sid", window=10, sent=10)
    assert tab.in_flight == 10 and not tab.has_room
    tab.sent = 9
    assert tab.has_room


def test_an_ack_never_goes_past_what_was_sent():
    tab = Reader("sid", window=10, sent=6)
    tab.ack(100)
    assert tab.acked == 6 and tab.in_flight == 0


def test_an_ack_never_goes_back():
    tab = Reader("sid", window=10, sent=8)
    tab.ack(5)
    tab.ack(2)
    assert tab.acked == 5


def test_skipped_bytes_count_as_sent_and_taken_in():
    tab = Reader("sid", window=10, sent=4, acked=1)
    tab.skip(100)
    assert (tab.sent, tab.acked, tab.in_flight) == (104, 101, 3)


def test_credit_before_a_producer_is_kept_and_given_once_it_attaches():
    credit, acks = Credit(), []
    credit.reached(100)
    credit.reached(40)   # a slower tab: the furthest counts
    credit.attach(acks.append)
    assert acks == [100]


def test_credit_passes_on_each_advance_once():
    credit, acks = Credit(), []
    credit.attach(acks.append)
    for position in (10, 10, 25, 20, 25, 30):
        credit.reached(position)
    assert acks == [10, 15, 5] and sum(acks) == 30


def test_credit_with_nothing_reached_gives_nothing_at_attach():
    credit, acks = Credit(), []
    credit.attach(acks.append)
    assert acks == []


def test_credit_counts_in_the_producers_own_bytes():
    """The server's own lines in the stream (here: every third byte) are not the producer's to be credited."""
    credit, acks = Credit(own=lambda position: position - position // 3), []
    credit.attach(acks.append)
    credit.reached(9)
    credit.reached(12)
    assert acks == [6, 2]


def test_credit_from_many_threads_adds_up_to_the_furthest_position():
    credit, acks, lock = Credit(), [], threading.Lock()

    def ack(n):
        with lock:
            acks.append(n)
    credit.attach(ack)
    threads = [threading.Thread(target=lambda k=k: [credit.reached(p) for p in range(k, 5000, 7)]) for k in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(acks) == 4999 and all(n > 0 for n in acks)
