"""Flow control, shared by runs and shells: one owner of each stream's window.

A stream (a run's output, a shell's) has one producer, a PTY that
``PtyProcess`` stops reading while its window of bytes is unacknowledged, so
that the kernel holds a flooding command, and any number of readers (browser
tabs). Everything is counted in the stream's positions: bytes from its start
as stored (a run's) or kept (a shell's), the server's own lines included.

- ``Reader``: one tab's window: what was sent to it and what it has taken
  in (it acknowledges a position); a tab a window behind is sent nothing
  live, and catches up from the store or backlog once it acknowledges.
- ``Credit``: the stream's one account with its producer. It is told how
  far the stream has been taken (the furthest tab, or the store or backlog
  when no tab reads) and passes the advance on, in the producer's own bytes
  (without the server's lines), never twice.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Callable


@dataclasses.dataclass(eq=False)
class Reader:
    sid: str
    window: int
    sent: int = 0      # position after the last byte sent to it
    acked: int = 0     # position it has taken in

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.window

    def ack(self, position: int) -> None:
        """The tab has taken in the stream up to ``position`` (never past what it was sent)."""
        self.acked = max(self.acked, min(position, self.sent))

    def skip(self, nbytes: int) -> None:
        """``nbytes`` the tab will never be sent count as sent and taken in."""
        self.sent += nbytes
        self.acked += nbytes


class Credit:
    """How far a stream's producer may read: ``reached(position)`` passes the
    advance to ``ack(nbytes)`` once a producer is attached."""

    def __init__(self, own: Callable[[int], int] = lambda position: position):
        self._own = own          # a stream position in the producer's bytes
        self._ack: Callable[[int], None] | None = None
        self._credited = 0       # in the producer's bytes
        self._reached = 0
        self._lock = threading.Lock()

    def attach(self, ack: Callable[[int], None]) -> None:
        """The producer exists now: credit it with what was reached before."""
        self._ack = ack
        self.reached(self._reached)

    def reached(self, position: int) -> None:
        with self._lock:
            self._reached = max(self._reached, position)
            if self._ack is None:
                return
            own = self._own(self._reached)
            delta, self._credited = own - self._credited, max(self._credited, own)
            ack = self._ack
        if delta > 0:
            ack(delta)
