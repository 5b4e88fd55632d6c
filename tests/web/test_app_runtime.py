"""How the app runs, beyond what it answers: the collector's set-up at start-up."""

import asyncio
import gc

from fastapi.testclient import TestClient

from cds_service.settings import Settings
from cds_service.web.app import GC_GEN0_THRESHOLD, create_app


def test_start_up_freezes_what_it_built_and_collects_the_young_generation_less_often(tmp_path):
    before = gc.get_threshold()
    settings = Settings(dev_mode=True, database_url=f"sqlite:///{tmp_path}/f.sqlite3")
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_a_client_gone_before_its_body_is_no_server_error(tmp_path, caplog):
    settings = Settings(dev_mode=True, database_url=f"sqlite:///{tmp_path}/f.sqlite3")
    app = create_app(settings)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/cds-services/igg4rd-order-sign",
        "raw_path": b"/cds-services/igg4rd-order-sign",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))  # raised ClientDisconnect (a 500 and a traceback) before
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.getMessage() == "unexpected error"]
