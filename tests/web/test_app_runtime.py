"""How the app runs, beyond what it answers: the collector's set-up at start-up."""

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
