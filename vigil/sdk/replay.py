"""Sending dead letters again, once their cause is fixed: what ``vigil sdk replay-dead-letters`` does.

Every letter is sent with its event exactly as first sent (the same id, so an event that was stored after all
is answered ``duplicate``, never stored twice). What the server accepts leaves the dead-letter store; what it
refuses again stays, with the new reason; what could not be sent (the server down, the key refused) stays as
it was. A batch refused as a whole is sent again one event at a time, so each refusal names its event.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.errors import ConfigError
from vigil.sdk import deadletter
from vigil.sdk.deadletter import DeadLetter
from vigil.sdk.transport import Answer, Transport, retry_delay
from vigil.sdk.worker import MAX_BATCH_BYTES

RETRIES = 4  # attempts of one batch the server could not answer, before the replay stops


@dataclass
class Refusal:
    """An event the server refused again, and why."""

    id: str | None
    action: str | None
    status: int | None
    error: str
    errors: list[dict[str, Any]] | None = None


@dataclass
class ReplayReport:
    """What a replay did. ``stopped`` says why it ended before sending everything (the rest was kept)."""

    total: int = 0
    accepted: int = 0  # stored now
    duplicates: int = 0  # the server had them already (stored after all, by an earlier attempt)
    refused: list[Refusal] = field(default_factory=list)
    unsent: int = 0  # kept as they were: not sent, or no answer
    unreadable: int = 0  # lines that are not dead letters, kept as they are
    stopped: str | None = None

    @property
    def kept(self) -> int:
        """Letters left in the dead-letter store."""
        return len(self.refused) + self.unsent + self.unreadable

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "refused": [r.__dict__ for r in self.refused],
            "unsent": self.unsent,
            "unreadable": self.unreadable,
            "kept": self.kept,
            "stopped": self.stopped,
        }


def _directory(spool_dir: str | Path) -> Path:
    directory = Path(spool_dir)
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory (give the client's spool_dir)")
    return directory


def list_letters(spool_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The dead letters of a spool directory as summaries (id, action, when, status, error), and the number
    of lines that are not letters. Changes nothing."""
    out, unreadable = [], 0
    for line in deadletter.peek(_directory(spool_dir)):
        letter = deadletter.parse(line)
        if letter is None:
            unreadable += 1
        else:
            out.append(letter.summary())
    return out, unreadable


class _Replay:
    def __init__(self, transport: Transport, batch_size: int, progress: Callable[[int], None]) -> None:
        self.transport = transport
        self.batch_size = batch_size
        self.max_bytes = MAX_BATCH_BYTES
        self.progress = progress
        self.report = ReplayReport()
        self.kept: list[bytes] = []

    def run(self, lines: list[bytes]) -> None:
        todo: deque[DeadLetter] = deque()
        for line in lines:
            letter = deadletter.parse(line)
            if letter is None:
                self.report.unreadable += 1
                self.kept.append(line)
            else:
                todo.append(letter)
        self.report.total = len(todo)
        in_flight: list[DeadLetter] = []
        try:
            while todo:
                in_flight = self._take(todo)
                rest = self._send(in_flight, todo)
                in_flight = []
                if rest is not None:  # stopped: these are not done, and neither is what follows them
                    todo.extendleft(reversed(rest))
                    break
        finally:
            # an exception (Ctrl-C) mid-batch keeps the whole batch: a letter stored meanwhile is a duplicate
            # next time, and a letter kept twice is merged into one by the next replay
            todo.extendleft(reversed(in_flight))
            self.report.unsent += len(todo)
            self.kept.extend(deadletter.encode(letter) for letter in todo)

    def _take(self, todo: deque[DeadLetter]) -> list[DeadLetter]:
        batch: list[DeadLetter] = []
        nbytes = 2
        while todo and len(batch) < self.batch_size:
            size = len(todo[0].event) + 1
            if batch and nbytes + size > self.max_bytes:
                break
            batch.append(todo.popleft())
            nbytes += size
        return batch

    def _post(self, batch: list[DeadLetter]) -> Answer | None:
        """The server's answer to the batch, after retries; None when it never gave one (the replay stops)."""
        body = b"[" + b",".join(bytes(letter.event) for letter in batch) + b"]"
        for attempt in range(1, RETRIES + 1):
            answer = self.transport.post(body)
            if answer.kind == "key":
                self.report.stopped = f"the server refused the key ({answer.error}); give a key that works"
                return None
            if answer.kind != "retry":
                return answer
            if attempt < RETRIES:
                time.sleep(retry_delay(attempt, answer.retry_after, 10.0))
        self.report.stopped = f"the server did not take the events ({answer.error}); try again later"
        return None

    def _send(self, batch: list[DeadLetter], todo: deque[DeadLetter]) -> list[DeadLetter] | None:
        """Send one batch and account for each letter; the letters left unfinished when the replay stops."""
        answer = self._post(batch)
        if answer is None:
            return batch
        if answer.kind == "split" and len(batch) > 1:  # over the tenant's burst: smaller batches from now on
            self.batch_size = max(1, min(len(batch) // 2, answer.max_events or len(batch)))
            if answer.max_bytes:
                self.max_bytes = min(self.max_bytes, answer.max_bytes)
            todo.extendleft(reversed(batch))
            return None
        if answer.kind in ("refused", "split"):
            if len(batch) > 1:  # refused as a whole: one at a time, so each refusal names its event
                for i, letter in enumerate(batch):
                    rest = self._send([letter], todo)
                    if rest is not None:
                        return rest + batch[i + 1 :]
                return None
            self._refused(batch[0], answer.status, answer.error, None)
            self.progress(1)
            return None
        by_index = {r.index: r for r in answer.results}
        for i, letter in enumerate(batch):
            r = by_index.get(i)
            if r is None:  # left out of the answer: nothing says it is stored; it stays as it was
                self.report.unsent += 1
                self.kept.append(deadletter.encode(letter))
            elif r.status == "stored":
                self.report.accepted += 1
            elif r.status == "duplicate":
                self.report.duplicates += 1
            else:
                self._refused(letter, answer.status, r.status, r.errors)
        self.progress(len(batch))
        return None

    def _refused(
        self, letter: DeadLetter, status: int | None, error: str, errors: list[dict[str, Any]] | None
    ) -> None:
        head = deadletter.event_fields(letter.event)
        self.report.refused.append(Refusal(head.get("id"), head.get("action"), status, error, errors))
        letter.status, letter.error, letter.errors = status, error, errors or None
        letter.replays += 1
        letter.replayed_at = datetime.now(UTC).isoformat()
        self.kept.append(deadletter.encode(letter))


def replay(
    spool_dir: str | Path,
    url: str,
    api_key: str,
    *,
    batch_size: int = 100,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Send the dead letters of ``spool_dir`` to ``url`` with ``api_key``; keep what is not accepted.

    ``on_start(total)`` is called once the letters are taken, ``progress(n)`` after each ``n`` letters sent.
    Safe beside a live client on the same directory, and after a replay that died half-way.
    """
    directory = _directory(spool_dir)
    transport = Transport(url, api_key, timeout)
    try:
        lines = deadletter.take(directory)
        job = _Replay(transport, batch_size, progress or (lambda n: None))
        if on_start is not None:
            on_start(sum(1 for line in lines if deadletter.parse(line) is not None))
        try:
            job.run(lines)
        finally:
            deadletter.put_back(directory, job.kept)
    finally:
        transport.close()
    return job.report
