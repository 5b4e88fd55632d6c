import copy
import json

from cds_service.fixtures.catalog import FIXTURES_DIR
from cds_service.hooks.handler import may_fetch
from cds_service.hooks.queries import QUERIES

PUBLISHED = json.loads((FIXTURES_DIR / "01-published-case" / "request.json").read_text())


def test_a_call_with_every_prefetch_key_cannot_fetch():
    assert not may_fetch(PUBLISHED)
    failed = copy.deepcopy(PUBLISHED)
    failed["prefetch"][QUERIES[0].key] = {"resourceType": "OperationOutcome", "issue": []}
    assert not may_fetch(failed)  # a failed prefetch key is not fetched again


def test_a_call_missing_a_prefetch_key_or_the_prefetch_may_fetch():
    for query in QUERIES:
        partial = copy.deepcopy(PUBLISHED)
        del partial["prefetch"][query.key]
        assert may_fetch(partial)
    assert may_fetch({k: v for k, v in PUBLISHED.items() if k != "prefetch"})
    assert may_fetch({**PUBLISHED, "prefetch": None})
    assert may_fetch([PUBLISHED])
