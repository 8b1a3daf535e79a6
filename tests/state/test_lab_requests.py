"""Lab requests in the store, on SQLite and PostgreSQL, and the 0001 -> 0002 migration."""

from __future__ import annotations

import pytest
from alembic import command

from amloop.state.database import (
    _alembic_config,
    current_revision,
    get_engine,
    head_revision,
    migrate,
)
from amloop.state.schema import LabRequest, Measurement
from amloop.state.store import CampaignStore

GROUP_1 = {"Fe": 0.0874, "Co": 0.0823, "Ni": 0.0826, "Mo": 0.0693, "B": 0.0587, "O": 0.6197}


def _measurement(composition: dict[str, float], value: float, **extra) -> Measurement:
    return Measurement(
        composition=composition,
        property="overpotential",
        value=value,
        unit="mV",
        source="lab A",
        raw_value=value,
        raw_unit="mV",
        **extra,
    )


def test_requests_are_deduplicated_matched_by_composition_and_fulfilled(db_url):
    store = CampaignStore.create(db_url, "oer", {})
    first = store.add_lab_request(LabRequest(composition=GROUP_1, properties=["overpotential"]))
    again = store.add_lab_request(LabRequest(composition=GROUP_1, properties=["overpotential"]))
    assert first.id == again.id and len(store.lab_requests()) == 1

    near = {**GROUP_1, "O": GROUP_1["O"] + 0.015, "B": GROUP_1["B"] - 0.015}  # ICP scatter
    far = {**GROUP_1, "O": GROUP_1["O"] - 0.1, "Fe": GROUP_1["Fe"] + 0.1}
    stored = store.add_measurements([_measurement(far, 300.0), _measurement(near, 290.0)])
    assert [m.request_id for m in stored] == [None, first.id]
    (request,) = store.lab_requests()
    assert request.status == "fulfilled" and request.measurement_ids == [stored[1].id]
    assert [e.kind for e in store.events(kind="lab_request_fulfilled")] == ["lab_request_fulfilled"]


def test_unknown_request_id_rolls_back_the_batch(db_url):
    store = CampaignStore.create(db_url, "oer", {})
    with pytest.raises(LookupError, match="lab request #42 is not an open request"):
        store.add_measurements(
            [_measurement(GROUP_1, 1.0), _measurement(GROUP_1, 2.0, request_id=42)]
        )
    assert store.measurements() == []


def test_upgrade_from_0001_keeps_measurements(sqlite_url):
    engine = get_engine(sqlite_url)
    command.upgrade(_alembic_config(engine), "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO campaigns (name, config, status, created_at) VALUES ('old', '{}', 'created', '2026-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO measurements (campaign_id, formula, composition, property, value, unit, raw_value, raw_unit, source, iteration, created_at) "
            "VALUES (1, 'Ni1', '{\"Ni\": 1.0}', 'bulk_modulus', 180.0, 'GPa', 180.0, 'GPa', 'lab', 0, '2026-01-01 00:00:00')"
        )
    migrate(engine)
    assert current_revision(engine) == head_revision()
    store = CampaignStore.open(sqlite_url, "old")
    (measurement,) = store.measurements()
    assert (
        measurement.value == 180.0 and measurement.request_id is None and measurement.method is None
    )
