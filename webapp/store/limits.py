"""What the store keeps (``Limits``, from Settings; docs/run-store.md), so
that no learner and no flood can fill the disk, and the notes it writes into
a run's output where it kept less.

- A run stores at most ``Limits.run`` bytes: its first half as it comes (the
  head), then the latest output (the tail), whose oldest chunks are deleted
  as new ones come. Chunks keep their position in the whole output, so what
  was left out is a gap that ``truncated`` counts, and a finished run that
  lost bytes gets a last chunk saying so (a note; 1 KiB is kept for it).
  (output.py)
- A learner's runs store at most ``Limits.learner`` bytes, all learners
  ``Limits.total``. Past either, finished runs make room, oldest first:
  runs that a later run of the same step replaced are deleted, then the
  latest runs' output is replaced by a note (the run, its status and checks
  stay, so progress is kept). The total takes from the learner who stores
  the most. Running runs are never touched: if nothing else is left, new
  output is counted, not stored. (quota.py)
- Runs that ended more than ``Limits.retention_days`` ago are deleted, at
  start and hourly. (retention.py)
"""

from __future__ import annotations

import dataclasses

NOTE_ROOM = 1024          # bytes of a run's cap kept for its note; a run's output is replaced only if larger


def mib(n: int) -> str:
    return f"{n >> 20} MiB" if n and n % (1 << 20) == 0 else f"{n:,} bytes"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the store keeps, in bytes and days (Settings gives MiB)."""

    run: int = 16 << 20
    learner: int = 256 << 20
    total: int = 4096 << 20
    retention_days: float = 30.0

    def __post_init__(self):
        if self.run < 2 * NOTE_ROOM:
            raise ValueError(f"LABNB_RUN_OUTPUT_MB: {self.run} bytes is too small a cap for a run; give at least 1 (MiB)")
        for name, small, big in (("LABNB_LEARNER_OUTPUT_MB", self.run, self.learner),
                                 ("LABNB_STORE_OUTPUT_MB", self.learner, self.total)):
            if big < small:
                raise ValueError(f"{name}: {mib(big)} is less than {mib(small)}, the limit it must hold"
                                 f" (a run's cap for a learner, a learner's for the store); raise it")
        if not self.retention_days >= 0:
            raise ValueError(f"LABNB_RETENTION_DAYS: expected a number of days >= 0 (0: keep runs for ever),"
                             f" got {self.retention_days}")

    @classmethod
    def from_settings(cls, s) -> Limits:
        """From a config.Settings (MiB)."""
        return cls(s.run_output_mb << 20, s.learner_output_mb << 20, s.store_output_mb << 20, s.retention_days)


def note(text: str, at_line_start: bool = True) -> bytes:
    """A line of labnb's own in a run's output, dim as the page shows its notes."""
    return ("" if at_line_start else "\r\n").encode() + f"\x1b[2m[{text}]\x1b[0m\r\n".encode()
