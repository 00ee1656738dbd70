"""The registry's side of the decision log: storing is idempotent, the log is append-only in the database itself,
idempotency records expire, deployment fallbacks are checked against the champion's outputs, and the CLI's
export writes the log masked — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pyarrow.parquet as pq
import pytest

from decide_cli.main import main
from registry import Registry, RegistryError, audit, deployments
from registry import decisions as decision_log
from registry.entities import User
from tests.registry.test_database_guards import approved_version, refused


def _record(decision_id: str, **extra: object) -> dict:
    return {
        "decision_id": decision_id,
        "logged_at": "2026-11-21T10:00:00.000001+00:00",
        "policy": "credit_line",
        "version": 1,
        "arm": "champion",
        "status": "decided",
        "record": {"ID": 7, "national_id": "****3456"},
        "sealed_pii": "gAAAA-sealed",
        "outputs": {"decision": "hold"},
        "reasons": ["R1"],
        "trace": ["a:1"],
        "lists": {},
        "as_of": "2026-11-21",
        **extra,
    }


IDS = [f"01a237c8-0000-7000-8000-{n:012d}" for n in range(5)]


def test_storing_twice_stores_once(registry: Registry) -> None:
    assert decision_log.store_decisions(registry, [_record(i) for i in IDS[:3]]) == 3
    assert decision_log.store_decisions(registry, [_record(i) for i in IDS]) == 2  # 3 were there already
    assert decision_log.count_decisions(registry) == 5
    assert decision_log.known_ids(registry, [*IDS, "nope"]) == set(IDS)
    logged = decision_log.get_decision(registry, IDS[0])
    assert (logged.outputs, logged.reasons, logged.record["national_id"]) == ({"decision": "hold"}, ["R1"], "****3456")
    assert logged.logged_at == audit.parse_instant("2026-11-21T10:00:00.000001+00:00")


def test_a_batch_of_several_statements_stores_each_row_once_with_its_own_values(registry: Registry) -> None:
    """A shipper's batch is stored as statements of ROWS_PER_STATEMENT rows: a batch that spans several (and ends
    in a short one), with ids stored before and ids repeated across statements, counts and stores every row once,
    each with its own values."""
    per = decision_log.ROWS_PER_STATEMENT
    ids = [f"01a237c8-0000-7000-8001-{n:012d}" for n in range(2 * per + 7)]
    decision_log.store_decisions(registry, [_record(ids[n], outputs={"n": n}) for n in (0, per, 2 * per)])
    batch = [_record(i, outputs={"n": n}, version=n % 3 + 1) for n, i in enumerate(ids)]
    batch += [_record(ids[1], outputs={"n": "again"}), _record(ids[per + 1], outputs={"n": "again"})]
    assert decision_log.store_decisions(registry, batch) == len(ids) - 3
    assert decision_log.count_decisions(registry) == len(ids)
    for n in (1, per - 1, per + 1, 2 * per + 6):
        logged = decision_log.get_decision(registry, ids[n])
        assert (logged.outputs, logged.version) == ({"n": n}, n % 3 + 1)
    assert decision_log.get_decision(registry, ids[per]).outputs == {"n": per}  # stored first, kept


def test_a_logged_time_is_stored_as_its_instant_and_found_by_time(registry: Registry) -> None:
    """The shipper writes rows through the driver, not the ORM: its times must read back, sort and compare as the
    ORM's do — the same instant whatever offset the record was written with."""
    decision_log.store_decisions(
        registry,
        [
            _record(IDS[0], logged_at="2026-11-21T09:59:59.999999+00:00"),
            _record(IDS[1], logged_at="2026-11-21T12:00:00.000001+02:00"),  # 10:00:00.000001 UTC
            _record(IDS[2], logged_at="2026-11-21T10:00:00.5+00:00"),
            _record(IDS[3], logged_at="2026-11-21T10:00:00.999+00:00:00"),  # an offset with seconds
        ],
    )
    assert decision_log.get_decision(registry, IDS[1]).logged_at == audit.parse_instant("2026-11-21T10:00:00.000001Z")
    assert decision_log.get_decision(registry, IDS[0]).logged_at == audit.parse_instant("2026-11-21T09:59:59.999999Z")
    assert decision_log.get_decision(registry, IDS[3]).logged_at == audit.parse_instant("2026-11-21T10:00:00.999Z")
    if registry.dialect == "sqlite":  # the very text SQLAlchemy writes for a DateTime, so it sorts with the ORM's rows
        with registry.read() as session:
            stored = (
                session.connection()
                .exec_driver_sql("SELECT logged_at FROM decisions WHERE decision_id = ?", (IDS[3],))
                .scalar_one()
            )
        assert stored == "2026-11-21 10:00:00.999000"
    window = decision_log.iter_decisions(
        registry, since=audit.parse_instant("2026-11-21T10:00:00Z"), until=audit.parse_instant("2026-11-21T10:00:01Z")
    )
    assert [logged.decision_id for batch in window for logged in batch] == IDS[1:4]
    window = decision_log.iter_decisions(
        registry, since=audit.parse_instant("2026-11-21T09:59:59Z"), until=audit.parse_instant("2026-11-21T10:00:00Z")
    )
    assert [logged.decision_id for batch in window for logged in batch] == IDS[:1]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE decisions SET outputs_json = '{}'",
        "DELETE FROM decisions",
    ],
)
def test_the_log_is_append_only_in_the_database(registry: Registry, statement: str) -> None:
    decision_log.store_decisions(registry, [_record(IDS[0])])
    assert "a logged decision is permanent" in refused(registry, statement)
    assert decision_log.count_decisions(registry) == 1


def test_a_fallback_is_permanent_too(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    deployments.activate(registry, people["deployer"], "credit_line", 1, fallback={"decision": "hold"})
    assert "fallback outcome is permanent" in refused(registry, "UPDATE deployment_fallbacks SET outcome_json = '{}'")
    assert "fallback outcome is permanent" in refused(registry, "DELETE FROM deployment_fallbacks")


def test_unknown_and_malformed_ids(registry: Registry) -> None:
    with pytest.raises(RegistryError) as caught:
        decision_log.get_decision(registry, IDS[4])
    assert caught.value.code == "not_found"
    with pytest.raises(RegistryError) as caught:
        decision_log.get_decision(registry, "x" * 40)
    assert caught.value.code == "invalid"


def test_idempotency_records_race_and_expire(registry: Registry) -> None:
    ttl = timedelta(hours=1)
    first = decision_log.remember_response(registry, "k1", "req-1", "f1", IDS[0], 200, b'{"a":1}', ttl)
    # A second writer with the same id loses the race and gets the first record back.
    second = decision_log.remember_response(registry, "k1", "req-1", "f2", IDS[1], 200, b'{"a":2}', ttl)
    assert second == first and second.decision_id == IDS[0]
    assert decision_log.find_response(registry, "k1", "req-1", ttl) == first
    assert decision_log.find_response(registry, "k2", "req-1", ttl) is None  # per key
    # Past the TTL the record is gone for readers, replaced by a new writer, and purged.
    assert decision_log.find_response(registry, "k1", "req-1", timedelta(0)) is None
    third = decision_log.remember_response(registry, "k1", "req-1", "f3", IDS[2], 200, b"{}", timedelta(0))
    assert third.decision_id == IDS[2]
    assert decision_log.purge_responses(registry, timedelta(0)) == 1


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ({"verdict": "hold"}, "'verdict', which is not an output of credit_line@1"),
        ({"decision": "maybe"}, "must be one of ['increase', 'hold', 'decrease'], not 'maybe'"),
        ({"limit_change": "ten"}, "the fallback's limit_change must be a number, not 'ten'"),
        ({"limit_change": True}, "must be a number, not True"),
        ({"reasons": "R1"}, "reasons are a list of reason codes"),
        ({}, "a fallback outcome is a JSON object of outputs"),
    ],
)
def test_a_fallback_is_checked_against_the_champion(
    registry: Registry, people: dict[str, User], fallback: dict, message: str
) -> None:
    approved_version(registry, people)
    with pytest.raises(RegistryError) as caught:
        deployments.activate(registry, people["deployer"], "credit_line", 1, fallback=fallback)
    assert caught.value.code == "invalid" and message in caught.value.message
    assert deployments.current_deployment(registry, "credit_line") is None  # nothing half-written


def test_a_fallback_is_kept_with_its_deployment_and_audited(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    outcome = {"decision": "hold", "limit_change": 0, "reasons": ["R99"]}
    deployment = deployments.activate(registry, people["deployer"], "credit_line", 1, fallback=outcome)
    assert deployments.current_deployment(registry, "credit_line").fallback == outcome == deployment.fallback
    with registry.read() as session:
        (event,) = [e for e in audit.events(session, "policy:credit_line") if e.action == "deployment.activated"]
    assert event.details["fallback"] == outcome


def test_cli_activate_with_a_fallback(registry: Registry, people: dict[str, User], monkeypatch, capsys) -> None:
    approved_version(registry, people)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("correct horse battery\n"))
    code = main(
        [
            "activate",
            "credit_line",
            "1",
            "--fallback",
            "{oops",
            "--db",
            registry.url,
            "--user",
            "deployer",
            "--password-stdin",
        ]
    )
    assert code == 4 and "--fallback is not valid JSON" in capsys.readouterr().err


def test_export_writes_the_log_masked(registry: Registry, tmp_path, capsys) -> None:
    decision_log.store_decisions(registry, [_record(i) for i in IDS[:3]])
    jsonl = tmp_path / "out.jsonl"
    assert main(["decisions", "export", "--db", registry.url, "--out", str(jsonl)]) == 0
    rows = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    assert [row["decision_id"] for row in rows] == IDS[:3]
    assert all("sealed_pii" not in row and row["record"]["national_id"] == "****3456" for row in rows)
    parquet = tmp_path / "out.parquet"
    assert main(["decisions", "export", "--db", registry.url, "--format", "parquet", "--out", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.num_rows == 3 and "sealed_pii" not in table.column_names
    assert orjson.loads(table.column("outputs")[0].as_py()) == {"decision": "hold"}
    capsys.readouterr()
    assert main(["decisions", "export", "--db", registry.url, "--since", "2026-11-22", "--out", "-"]) == 0
    assert capsys.readouterr().out == ""  # nothing since then, and no summary mixed into the data
    assert main(["decisions", "export", "--db", registry.url, "--since", "yesterday", "--out", "-"]) == 4
    assert "--since: 'yesterday' is not a time" in capsys.readouterr().err
