"""Recording the cards shown off the request path: a queue and one writer thread, batched transactions."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Final

from cds_service.feedback.store import CardBatch, Store

log = logging.getLogger(__name__)

MAX_QUEUE: Final = 10_000
MAX_BATCH: Final = 200
LINGER_S: Final = 0.25


class CardRecorder:
    """Writes the cards of hook responses to the store in batches, from one background thread.

    A hook call only enqueues (microseconds); the writer, woken by the first record, sleeps ``linger_s``
    (cut short by :meth:`flush` and :meth:`close`), then commits what has accumulated (at most
    ``max_batch``) in one transaction: a commit costs the writer about as much as 30 batched records, and
    while the writer holds the GIL the event loop waits, so few large commits beat many small ones, and
    one wake-up per batch beats one per record. When the queue is full (the database is stuck), records
    are dropped and counted in the log rather than slowing or failing hook calls: recording serves the
    feedback analytics, not the card.
    """

    def __init__(
        self,
        store: Callable[[], Store],
        max_queue: int = MAX_QUEUE,
        max_batch: int = MAX_BATCH,
        linger_s: float = LINGER_S,
    ) -> None:
        """``store`` opens (or returns) the store, called on the writer thread."""
        self._store = store
        self._queue: queue.Queue[CardBatch | None] = queue.Queue(max_queue)
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._hurry = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def submit(self, batch: CardBatch) -> None:
        """Queue one response's cards for recording; never blocks."""
        self._ensure_started()
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.dropped += 1
            log.warning(
                "card record dropped: queue full",
                extra={"service": batch.service_id, "dropped": self.dropped},
            )

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (for tests and shutdown)."""
        self._hurry.set()  # ends the writer's linger
        # Queue.join has no timeout: wait for it on a helper thread, bounded here.
        waiter = threading.Thread(target=self._queue.join, daemon=True)
        waiter.start()
        waiter.join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._hurry.set()
        self._thread.join(timeout)
        self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="card-recorder", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batches, taken, stop = self._gather()
            self._write(batches)
            for _ in range(taken):
                self._queue.task_done()
            if stop:
                return

    def _gather(self) -> tuple[list[CardBatch], int, bool]:
        """Wait for a record, linger, then take what has accumulated (at most ``max_batch`` records).

        Returns (records, queue items taken, whether the stop marker came).
        """
        first = self._queue.get()
        if first is None:
            return [], 1, True
        assert isinstance(first, CardBatch)
        if self._queue.qsize() < self._max_batch - 1:
            self._hurry.wait(self._linger_s)
        self._hurry.clear()
        batches, taken = [first], 1
        while len(batches) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            taken += 1
            if item is None:
                return batches, taken, True
            assert isinstance(item, CardBatch)
            batches.append(item)
        return batches, taken, False

    def _write(self, batches: list[CardBatch]) -> None:
        if not batches:
            return
        try:
            self._store().record_card_batches(batches)
        except Exception as exc:  # a storage failure must never reach the hook calls
            log.error(
                "recording cards failed", extra={"batches": len(batches), "error_type": type(exc).__name__}
            )
