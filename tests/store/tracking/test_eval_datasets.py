"""Evaluation datasets and their records on DynamoDB answer as MLflow's SqlAlchemyStore (sqlite).

The same calls go to both stores with one shared clock; answers are compared as dicts, with the
ids each store chooses mapped away (record ids compared through their inputs). Then what only
ours has to show: many records read in pages of one Query each, a record larger than an item,
and the DynamoDB requests each call makes.
"""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException
from store_support import Clock

import store.tracking.eval_datasets as dataset_module
import store.tracking.eval_records as record_module

RECORDS = [
    {
        "inputs": {"question": "What is MLflow?"},
        "outputs": {"answer": "a platform", "score": 1},
        "expectations": {"correct": True},
        "tags": {"origin": "hand"},
        "source": {"source_type": "HUMAN", "source_data": {"user_id": "ana"}},
    },
    {"inputs": {"question": "What is Cedar?"}, "outputs": "a policy language"},
    {"inputs": {"question": "What is MLflow?"}, "expectations": {"complete": 2}},
]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(dataset_module, "get_current_time_millis", clock)
    monkeypatch.setattr(record_module, "get_current_time_millis", clock)
    monkeypatch.setattr("mlflow.store.tracking.sqlalchemy_store.get_current_time_millis", clock)
    return clock


def outcome(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except MlflowException as exc:
        return ("error", exc.error_code, exc.message)


def dataset_view(dataset) -> dict:
    fields = ("name", "digest", "created_time", "last_update_time", "created_by")
    fields += ("last_updated_by", "tags", "schema", "profile")
    return {name: getattr(dataset, name) for name in fields}


def records_view(records) -> list[dict]:
    out = []
    for record in records:
        data = record.to_dict()
        data.pop("dataset_record_id")
        data.pop("dataset_id")
        data.pop("last_update_time")  # MLflow's merge stamps the wall clock, not its store's
        out.append(data)
    return out


def test_datasets_answer_as_mlflows_store(moto_store, sql_store, clock):
    stores = (moto_store, sql_store)
    first = [s.create_experiment("first") for s in stores]
    second = [s.create_experiment("second") for s in stores]
    made = [
        s.create_dataset("qa", tags={"team": "search", "mlflow.user": "bob"}, experiment_ids=[e])
        for s, e in zip(stores, first, strict=True)
    ]
    assert dataset_view(made[0]) == dataset_view(made[1])
    assert made[0].experiment_ids == [first[0]]
    ids = [d.dataset_id for d in made]
    clock.now += 10
    counts = [s.upsert_dataset_records(d, RECORDS) for s, d in zip(stores, ids, strict=True)]
    assert counts[0] == counts[1] == {"inserted": 2, "updated": 1}
    views = [dataset_view(s.get_dataset(d)) for s, d in zip(stores, ids, strict=True)]
    assert views[0] == views[1]
    pages = []
    for s, d in zip(stores, ids, strict=True):
        page, token = s._load_dataset_records(d, max_results=1)
        rest, end = s._load_dataset_records(d, max_results=1, page_token=token)
        both = sorted(records_view(page + rest), key=json.dumps)  # one time: ties go by id
        pages.append((len(page), both, end))
    assert pages[0] == pages[1]
    clock.now += 10
    for s, d, e in zip(stores, ids, second, strict=True):
        s.add_dataset_to_experiments(d, [e])
        s.set_dataset_tags(d, {"stage": "ready", "skipped": None})
        s.delete_dataset_tag(d, "team")
    views = [dataset_view(s.get_dataset(d)) for s, d in zip(stores, ids, strict=True)]
    assert views[0] == views[1]
    linked = [s.get_dataset_experiment_ids(d) for s, d in zip(stores, ids, strict=True)]
    assert linked == [[first[0], second[0]], [first[1], second[1]]]
    removed = []
    for s, d in zip(stores, ids, strict=True):
        record = s._load_dataset_records(d)[0][0]
        removed.append((s.delete_dataset_records(d, [record.dataset_record_id, "dr-none"]),))
    assert removed[0] == removed[1]
    assert dataset_view(moto_store.get_dataset(ids[0])) == dataset_view(
        sql_store.get_dataset(ids[1])
    )


@pytest.mark.parametrize(
    "filter_string",
    [
        None,
        "name = 'qa'",
        "name LIKE 'q%'",
        "name ILIKE 'Q%'",
        "name IN ('qa', 'other')",
        "tags.team = 'search'",
        "tags.team != 'search'",
        "created_time > 1700000000003",
        "last_update_time <= 1700000000003 AND name != 'x'",
        "created_by = 'bob'",
        "nonsense = 1",
        "created_time > 1.5",
        "name > 'a'",
        "tags.team > 'a'",
        "name = 'a' OR name = 'b'",
    ],
)
@pytest.mark.parametrize("order_by", [None, ["name"], ["name DESC", "created_time"], ["bad"]])
def test_search_filters_orders_and_pages_as_mlflow(
    moto_store, sql_store, clock, filter_string, order_by
):
    answers = []
    for store in (moto_store, sql_store):
        experiment = store.create_experiment("searched")
        other = store.create_experiment("elsewhere")
        for n, (name, team) in enumerate(
            [("qa", "search"), ("chat", "ops"), ("qa-old", None), ("z", "search")]
        ):
            clock.now = 1_700_000_000_000 + n * 2
            tags = {"team": team} if team else {}
            store.create_dataset(
                name, tags={**tags, "mlflow.user": "bob"}, experiment_ids=[experiment]
            )
        store.create_dataset("qa", experiment_ids=[other])
        pages, token = [], None
        while True:
            found = outcome(store.search_datasets, [experiment], filter_string, 2, order_by, token)
            if isinstance(found, tuple):
                pages.append(found)
                break
            pages.append([(d.name, d.created_time, d.tags) for d in found])
            token = found.token
            if not token:
                break
        answers.append(pages)
    assert answers[0] == answers[1]


def test_missing_datasets_answer_as_mlflow(moto_store, sql_store):
    for call, args in [
        ("get_dataset", ("d-none",)),
        ("set_dataset_tags", ("d-none", {"a": "b"})),
        ("add_dataset_to_experiments", ("d-none", ["0"])),
        ("remove_dataset_from_experiments", ("d-none", ["0"])),
        ("delete_dataset", ("d-none",)),
        ("delete_dataset_tag", ("d-none", "a")),
        ("delete_dataset_records", ("d-none", ["dr-x"])),
        ("get_dataset_experiment_ids", ("d-none",)),
        ("_load_dataset_records", ("d-none",)),
        ("search_datasets", (None, None, 10, None, "not-a-token")),
        ("search_datasets", (None, None, 10, None, "eyJ4IjogMX0=")),
    ]:
        ours = outcome(getattr(moto_store, call), *args)
        theirs = outcome(getattr(sql_store, call), *args)
        assert ours == theirs, call


def test_unknown_experiments_are_refused_and_nothing_is_linked(moto_store):
    dataset = moto_store.create_dataset("qa", experiment_ids=["0"])
    refused = outcome(moto_store.add_dataset_to_experiments, dataset.dataset_id, ["0", "4242"])
    assert refused[:2] == ("error", "RESOURCE_DOES_NOT_EXIST")
    assert moto_store.get_dataset_experiment_ids(dataset.dataset_id) == ["0"]
    assert outcome(moto_store.create_dataset, "qa", None, ["4242"])[1] == "RESOURCE_DOES_NOT_EXIST"


def test_deleted_dataset_leaves_nothing_behind(moto_store):
    dataset = moto_store.create_dataset("qa", experiment_ids=["0"])
    moto_store.upsert_dataset_records(dataset.dataset_id, RECORDS)
    moto_store.delete_dataset(dataset.dataset_id)
    assert moto_store.search_datasets(["0"]) == []
    assert moto_store._load_dataset_records(dataset.dataset_id) == ([], None)
    items = moto_store.table._client.scan(TableName=moto_store.table.name)["Items"]
    assert not [i for i in items if dataset.dataset_id in json.dumps(i)]


def requests_of(store, call, *args, **kwargs) -> dict[str, int]:
    store.table.round_trips.reset()
    call(*args, **kwargs)
    return store.table.round_trips.by_operation()


def test_many_records_are_written_in_batches_and_read_one_query_per_page(moto_store):
    dataset = moto_store.create_dataset("many", experiment_ids=["0"]).dataset_id
    records = [{"inputs": {"n": n}, "outputs": n} for n in range(250)]
    upsert = requests_of(moto_store, moto_store.upsert_dataset_records, dataset, records)
    assert upsert == {
        "GetItem": 1,
        "BatchGetItem": 3,
        "PutItem": 250,
        "BatchWriteItem": 10,
        "UpdateItem": 1,
    }
    again = requests_of(moto_store, moto_store.upsert_dataset_records, dataset, records)
    assert again == {"GetItem": 1, "BatchGetItem": 6, "BatchWriteItem": 10, "UpdateItem": 1}
    seen, token = [], None
    while True:
        moto_store.table.round_trips.reset()
        page, token = moto_store._load_dataset_records(dataset, max_results=100, page_token=token)
        assert moto_store.table.round_trips.by_operation() == {"Query": 1}
        seen += [r.inputs["n"] for r in page]
        if token is None:
            break
    assert sorted(seen) == list(range(250))
    assert json.loads(moto_store.get_dataset(dataset).profile) == {"num_records": 250}


def test_a_record_larger_than_an_item_is_kept_in_parts(moto_store):
    dataset = moto_store.create_dataset("big", experiment_ids=["0"]).dataset_id
    text = "".join(f"{n:08x}" for n in range(110_000))  # 880 KB that zlib cannot shrink much
    moto_store.upsert_dataset_records(dataset, [{"inputs": {"q": "big"}, "outputs": text}])
    (record,), _ = moto_store._load_dataset_records(dataset, max_results=10)
    assert record.outputs == text
    moto_store.upsert_dataset_records(dataset, [{"inputs": {"q": "big"}, "outputs": "small"}])
    (record,), _ = moto_store._load_dataset_records(dataset)
    assert record.outputs == "small"
    items = moto_store.table._client.scan(TableName=moto_store.table.name)["Items"]
    assert not [i for i in items if "#P" in i["sk"]["S"]]  # the old parts are gone
