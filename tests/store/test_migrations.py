"""Alembic migrations: stores written by old code (fixtures made by commit 15265c8) open with nothing lost.

Each fixture is opened on SQLite as the file itself, and on PostgreSQL by building the
old schema with the revisions up to its version and copying its rows in.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Column, MetaData, create_engine, func, inspect, select, text

from activelab.store import SCHEMA_VERSION, Store, migrations, open_store, sqlite_url
from activelab.store import schema as t

FIXTURES = Path(__file__).parent / "fixtures"


def _copy_to_postgres(fixture: Path, url: str, version: int) -> None:
    """A PostgreSQL store at ``version`` holding the fixture's rows (ids kept, sequences moved past them)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        assert migrations.ensure_schema(conn, url, target=version) == version
    source = create_engine(sqlite_url(fixture))
    old, new = MetaData(), MetaData()
    old.reflect(source)
    new.reflect(engine)
    assert set(old.tables) == set(new.tables)  # the revisions up to `version` build the old code's tables
    with source.connect() as src, engine.begin() as dst:
        for table in new.sorted_tables:
            if table.name == "meta":
                continue
            rows = [dict(row._mapping) for row in src.execute(select(old.tables[table.name]))]
            if rows:
                dst.execute(table.insert(), rows)
            if "id" in table.c and rows:  # rows came with their ids: move each serial past them
                seq = f"pg_get_serial_sequence('{table.name}', 'id')"
                dst.execute(text(f"SELECT setval({seq}, (SELECT max(id) FROM {table.name}))"))
    source.dispose()
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str, int], str]:
    """``old_store(fixture name, its schema version)`` -> the URL of a copy of that store, on each backend."""

    def make(name: str, version: int) -> str:
        if request.param == "sqlite":
            return sqlite_url(shutil.copy(FIXTURES / name, tmp_path / name))
        url = str(request.getfixturevalue("postgres_url"))
        _copy_to_postgres(FIXTURES / name, url, version)
        return url

    return make


def _schema_version(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version")))


def _schema_diff(store: Store) -> list[object]:
    """What differs between the store's tables and ``schema.py`` (Alembic's autogenerate comparison)."""
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), t.metadata))


def test_the_head_revision_is_the_schema_version() -> None:
    script = migrations.revisions()
    assert script.get_current_head() == migrations.revision_id(SCHEMA_VERSION) == "0005"
    chain = [rev.revision for rev in script.walk_revisions()]
    assert chain == ["0005", "0004", "0003", "0002", "0001"]


def test_a_new_store_built_by_the_revisions_matches_the_schema(store: Store) -> None:
    assert _schema_version(store) == SCHEMA_VERSION
    assert _schema_diff(store) == []


def test_a_v3_store_upgrades_with_nothing_lost(old_store: Callable[[str, int], str]) -> None:
    with open_store(old_store("v3_store.sqlite", 3), create=False) as store:
        assert _schema_version(store) == 5
        assert _schema_diff(store) == []
        images = store.images()
        assert [i.id for i in images] == list(range(1, 11))
        assert [i.path for i in images] == [f"/srv/shop/images/{n:03d}.png" for n in [*range(8), 100, 101]]
        assert [i.split for i in images] == ["pool"] * 8 + ["eval"] * 2
        assert {i.format for i in images} == {"PNG"} and {(i.width, i.height) for i in images} == {(8, 8)}
        assert all(store.find_image(i.sha256) == i for i in images) and len({i.sha256 for i in images}) == 10
        assert store.class_names() == ["shirt", "bag", "shoe"] and store.retired_classes() == ["hat"]

        history = [
            (e.id, e.image_id, e.label, e.source, e.round_number) for i in images for e in store.label_history(i.id)
        ]
        assert sorted(history) == [
            (1, 1, "shirt", "import", 0),
            (2, 2, "bag", "import", 0),
            (3, 4, "shoe", "import", 0),
            (4, 9, "shirt", "import", 0),
            (5, 10, "bag", "import", 0),
            (6, 5, "bag", "oracle", 1),
            (7, 6, "shirt", "oracle", 1),
            (8, 2, "shoe", "correction", 1),
            (9, 4, None, "review", 1),
            (10, 7, "shoe", "human", 1),
            (11, 7, "bag", "human", 1),
            (12, 3, "shirt", "human", 1),
            (13, 3, None, "human", 1),
        ]
        events = [e for i in images for e in store.label_history(i.id)]
        assert all(e.annotation is None for e in events)  # the new column is NULL for every old event
        assert {e.id: e.note for e in events if e.note} == {8: "it has laces", 9: "unsure", 13: "undo of event 12"}
        current = {iid: c.label for iid, c in store.current_labels().items()}
        assert current == {1: "shirt", 2: "shoe", 5: "bag", 6: "shirt", 7: "bag", 9: "shirt", 10: "bag"}
        assert {iid: a.payload for iid, a in store.current_annotations().items()} == current

        rounds = store.rounds()
        assert [(r.number, r.status, r.strategy, r.model) for r in rounds] == [
            (1, "done", "margin", "lite0"),
            (2, "failed", "margin", "lite0"),
        ]
        assert rounds[0].metrics == {"accuracy": 0.5, "n_eval": 2} and rounds[0].config == {"k": 2, "seed": 0}
        assert rounds[1].metrics == {"error": "killed"}
        assert store.round_selection(1) == [(5, 0.9), (6, 0.7), (7, None)]
        assert store.round_asked(1) == {} and store.asked_mask_key(5) is None  # old rows asked whole images
        assert store.latest_predictions([5, 6, 7]) == {5: ("bag", 0.61, 1), 6: ("shirt", 0.55, 1), 7: ("shoe", 0.4, 1)}

        assert store.live_leases() == {8: "carol"}
        assert store.skipped_ids("bob") == {8}
        (flag,) = store.review_flags()
        assert (flag.image_id, flag.reason) == (7, "disagreement")
        assert flag.details == {"labels": {"ann": "shoe", "bob": "bag"}, "events": [10, 11]}
        assert store.service_state("trainer") == {"status": "idle", "last_round": 1}
        assert store.summary()["labeled"] == {"pool": 5, "eval": 2}

        undo = store.undo_last_label("ann")  # event 12 was undone (by 13) before the upgrade: 10 is next
        assert undo is not None and (undo.undone_event_id, undo.image_id, undo.restored_label) == (10, 7, None)
        (new_event,) = store.add_annotations([(8, ["shoe", "bag"])], author="carol", source="human")
        assert new_event == max(e.id for e in events) + 2
        assert store.current_annotations()[8].payload == ["bag", "shoe"]


def test_a_v1_store_upgrades_with_nothing_lost(old_store: Callable[[str, int], str]) -> None:
    with open_store(old_store("v1_store.sqlite", 1), create=False) as store:
        assert _schema_version(store) == 5
        assert _schema_diff(store) == []
        assert [(i.id, i.path, i.format) for i in store.images()] == [
            (n + 1, f"/srv/shop/images/{n:03d}.png", None) for n in range(3)
        ]
        assert store.class_names() == ["shirt", "bag"] and store.retired_classes() == []
        history = [(e.id, e.label, e.author, e.source) for iid in (1, 2, 3) for e in store.label_history(iid)]
        assert sorted(history) == [
            (1, "shirt", "ann", "import"),
            (2, "bag", "ann", "import"),
            (3, "bag", "oracle", "oracle"),
            (4, None, "ann", "human"),
        ]
        assert {iid: c.label for iid, c in store.current_labels().items()} == {2: "bag", 3: "bag"}
        assert [(r.number, r.status, r.metrics) for r in store.rounds()] == [(1, "done", {"accuracy": 1.0})]
        assert store.round_selection(1) == [(3, 0.5)]
        assert store.live_leases() == {} and store.review_flags() == [] and store.service_state("trainer") is None
        store.set_service_state("trainer", {"status": "idle"})
        assert store.service_state("trainer") == {"status": "idle"}


def test_a_failed_upgrade_of_an_old_store_changes_nothing(
    old_store: Callable[[str, int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = old_store("v3_store.sqlite", 3)
    v4 = migrations.revisions().get_revision("0004")

    def broken() -> None:
        v4.module.op.add_column("label_events", Column("annotation", JSON))
        raise RuntimeError("power cut")

    monkeypatch.setattr(v4.module, "upgrade", broken)
    with pytest.raises(RuntimeError, match="power cut"):
        open_store(url, create=False)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version")) == "3"
        assert "annotation" not in {c["name"] for c in inspect(conn).get_columns("label_events")}
        assert conn.scalar(select(func.count()).select_from(t.images)) == 10
    engine.dispose()
