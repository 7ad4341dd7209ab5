"""search_traces newest first (the default order) reads each experiment's index backwards and
stops early: the pages it gives are the pages of the full order, ties and all."""

from __future__ import annotations

import pytest
from test_traces_differential import _locations, _pages, stores  # noqa: F401 - fixture
from test_traces_support import span, trace_info

T0 = 1_700_000_000_000

NEWEST_FIRST_ORDERS = [
    ["timestamp_ms DESC"],
    ["timestamp_ms DESC", "request_id DESC"],
    ["timestamp_ms DESC", "name"],
]
FEW_MATCHES = [
    "client_request_id = 'c-1'",
    "feedback.quality = 'good'",
    "span.name = 'llm' AND status = 'ERROR'",
    "tags.k1 = 'none of them'",
]


@pytest.mark.parametrize("order_by", NEWEST_FIRST_ORDERS)
def test_newest_first_orders_match_sql_store(stores, order_by):  # noqa: F811
    ours, oracle, experiments = stores
    our_ids, oracle_ids = _locations(experiments)
    for filter_string, size in [(None, 1), (None, 3), ("status = 'OK'", 4)]:
        expected = _pages(oracle, oracle_ids, filter_string, order_by, size)
        got = _pages(ours, our_ids, filter_string, order_by, size)
        assert got == expected, (order_by, filter_string, size)


@pytest.mark.parametrize("filter_string", FEW_MATCHES)
def test_rare_matches_page_like_sql_store(stores, filter_string):  # noqa: F811
    ours, oracle, experiments = stores
    our_ids, oracle_ids = _locations(experiments)
    for size in (1, 2):
        expected = _pages(oracle, oracle_ids, filter_string, None, size)
        assert _pages(ours, our_ids, filter_string, None, size) == expected, size


def _ids(store, locations, size, token=None, filter_string=None):
    infos, token = store.search_traces(
        locations=locations, max_results=size, page_token=token, filter_string=filter_string
    )
    return [i.trace_id for i in infos], token


def test_equal_timestamps_across_experiments_page_by_trace_id(moto_store):
    first, second = moto_store.create_experiment("a"), moto_store.create_experiment("b")
    expected = []
    for n in range(12):
        trace_id = f"tr-{(n * 7) % 12:02d}"
        experiment_id = first if n % 3 else second
        request_time = T0 + (0 if n < 9 else 5)
        moto_store.start_trace(trace_info(trace_id, experiment_id, request_time=request_time))
        expected.append((-request_time, trace_id))
    expected = [trace_id for _, trace_id in sorted(expected)]
    pages, token = [], None
    for _ in range(5):
        page, token = _ids(moto_store, [first, second], 3, token)
        pages.append(page)
    assert pages == [expected[0:3], expected[3:6], expected[6:9], expected[9:12], []]
    assert token is None
    assert _ids(moto_store, [second, first], 12)[0] == expected
    odd = _ids(moto_store, [first, second], 2, filter_string="request_id LIKE '%1'")[0]
    assert odd == [t for t in expected if t.endswith("1")][:2]


def test_traces_whose_spans_start_before_their_indexed_time(moto_store):
    """Spans logged before start_trace index the trace by the first ones; a later root span
    that started earlier makes the trace older than its index position."""
    experiment_id = moto_store.create_experiment("spans")
    moto_store.log_spans(
        experiment_id, [span("tr-late-root", 2, parent=1, start_ns=_ns(10), end_ns=_ns(11))]
    )
    moto_store.log_spans(experiment_id, [span("tr-late-root", 1, start_ns=_ns(1), end_ns=_ns(11))])
    for trace_id, seconds in (("tr-b", 5), ("tr-c", 8), ("tr-d", 2)):
        moto_store.start_trace(
            trace_info(trace_id, experiment_id, request_time=T0 + seconds * 1000)
        )
    everything = ["tr-c", "tr-b", "tr-d", "tr-late-root"]
    assert _ids(moto_store, [experiment_id], 10)[0] == everything
    for size in (1, 2, 3):
        pages, token = [], None
        for _ in range(4 // size + 1):
            page, token = _ids(moto_store, [experiment_id], size, token)
            pages += page
        assert pages == everything, size


def _ns(seconds: int) -> int:
    return (T0 + seconds * 1000) * 1_000_000
