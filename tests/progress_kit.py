"""Progress receivers for tests: hooks at exact points of a job, and a recorder."""

from __future__ import annotations

import json
from typing import Callable

from ebas.progress import Progress, Status, Tracker
from ebas.runtime import FakeClock


class PhaseHook(Progress):
    """Calls ``fn(phase, items_done, items_total)`` when a phase starts and after every
    advance that completes items: tests crash a job at an exact step this way."""

    def __init__(self, fn: Callable[[str, int, int | None], None]) -> None:
        self.fn = fn
        self.phase = ""
        self.done = 0
        self.total: int | None = None

    def start(self, phase: str, *, items_total: int | None = None, bytes_total: int | None = None) -> None:
        self.phase, self.done, self.total = phase, 0, items_total
        self.fn(phase, 0, items_total)

    def advance(self, *, items: int = 0, bytes: int = 0, current: str | None = None) -> None:  # noqa: A002
        if items:
            self.done += items
            self.fn(self.phase, self.done, self.total)


class Recorder:
    """A Tracker (fake clock, every event emitted) that keeps the last status of each
    phase, in the order the phases ran."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.last: dict[str, Status] = {}
        self.statuses: list[Status] = []
        self.tracker = Tracker(clock=self.clock, interval=0, listeners=[self._seen])

    def _seen(self, st: Status) -> None:
        self.statuses.append(st)
        self.last[st.phase] = st

    @property
    def phases(self) -> list[str]:
        """Phases in the order they started."""
        return list(self.last)

    def final(self, phase: str) -> Status:
        """The last status of ``phase`` (its figures when it ended)."""
        return self.last[phase]


def summary(stdout: bytes | str) -> dict:
    """The result object of a ``--json`` command: the whole output when it is one JSON
    document, else its last line (commands with progress print status lines before it,
    one JSON object per line)."""
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.strip().splitlines()[-1])
