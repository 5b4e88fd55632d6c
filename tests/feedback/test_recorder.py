import threading

from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.store import CardBatch, ShownCard, Store


def _card(uuid: str) -> ShownCard:
    return ShownCard(uuid, "info")


def _batch(uuid: str, patient: str | None = "Patient/p1") -> CardBatch:
    return CardBatch("igg4rd-order-sign", "order-sign", f"hi-{uuid}", patient, [_card(uuid)])


def test_cards_are_written_in_batches_and_flush_waits(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path}/f.db")
    recorder = CardRecorder(lambda: store)
    for i in range(50):
        recorder.submit(_batch(f"u{i}"))
    recorder.flush()
    [rates] = store.rates_by_service()
    assert rates.cards_shown == 50
    recorder.close()


def test_close_writes_what_is_queued(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path}/f.db")
    recorder = CardRecorder(lambda: store)
    recorder.submit(_batch("last"))
    recorder.close()
    assert store.rates_by_service()[0].cards_shown == 1


def test_a_store_failure_is_logged_not_raised(caplog):
    def broken() -> Store:
        raise OSError("disk gone")

    recorder = CardRecorder(broken)
    recorder.submit(_batch("x"))
    recorder.flush()
    assert any(r.getMessage() == "recording cards failed" for r in caplog.records)
    recorder.close()


def test_a_full_queue_drops_instead_of_blocking(tmp_path):
    gate = threading.Event()
    store = Store.from_url(f"sqlite:///{tmp_path}/f.db")

    def slow_store() -> Store:
        gate.wait(5)
        return store

    recorder = CardRecorder(slow_store, max_queue=2, max_batch=1)
    for i in range(10):
        recorder.submit(_batch(f"u{i}"))
    assert recorder.dropped >= 7
    gate.set()
    recorder.close()
