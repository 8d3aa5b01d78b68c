"""
The store's tables against the records (adapter/postgres/cross-check.ts, docs/contract.md §7): the
hash chain proves the records were not changed, but escalation and approvals read the decisions
table, which the instances can write. Every row must say what its records say, and every decision,
approval and rejection record must have its row. Read-only. The same checks and words as the
TypeScript cross-check, so `python -m veto_crm log verify --postgres` reports what `veto log verify
--postgres` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from ..decision import OUTAGE_REASON_CODES, iso_timestamp
from ..evidence import answer_problem
from ..jsontext import JsonParseError, parse, stringify
from ..store import StoredDecision, counts_for_actor
from .connection import DEFAULT_SCHEMA, check_schema, check_url, quote_ident
from .store import READ_COLUMNS, _stored

PAGE = 1000
MAX_MISMATCHES = 1000
_MISSING = object()


@dataclass(frozen=True)
class StoreMismatch:
    decision_id: str
    problem: str
    #: The record concerned, when it is one without its row.
    seq: Optional[int] = None


@dataclass(frozen=True)
class CrossCheckResult:
    ok: bool
    schema: str
    rows: int
    records: int
    #: The first MAX_MISMATCHES mismatches, rows in id order, then records in seq order.
    mismatches: tuple[StoreMismatch, ...] = field(default=())
    #: How many there are in all.
    total: int = 0


def _iso(ms: Any) -> str:
    return iso_timestamp(ms) if isinstance(ms, (int, float)) else str(ms)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "none"
    try:
        return stringify(list(value) if isinstance(value, tuple) else value)
    except Exception:
        return str(value)


def time_ms(value: Any) -> Optional[int]:
    """Date.parse of a record's ISO 8601 UTC timestamp, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000 + (0.5 if parsed.timestamp() >= 0 else -0.5))


def _js(value: Any) -> str:
    """String(value) as JavaScript writes it (a missing member: undefined)."""
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_line(line: str) -> dict[str, Any]:
    """A line of the (verified) chain; one that is not a JSON object reads as an empty record, which matches nothing."""
    try:
        parsed = parse(line)
    except (JsonParseError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _record_counts(record: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether a decision record counts towards its actor's recentDenies: the policy's deny of the agent's own call."""
    reasons = result.get("reasons")
    return (
        "amended_from" not in record
        and result.get("action") == "deny"
        and isinstance(reasons, list)
        and not any(isinstance(r, dict) and r.get("code") in OUTAGE_REASON_CODES for r in reasons)
    )


def row_problems(row: StoredDecision, records: list[dict[str, Any]]) -> list[str]:
    """What is wrong with one decision row, given its records in chain order (cross-check.ts rowProblems)."""
    problems: list[str] = []
    made = [r for r in records if r.get("type") == "decision"]
    if not made:
        problems.append(f"{row.action} at {_iso(row.at_ms)} has no decision record{' (a deny escalation counts)' if row.action == 'deny' else ''}")
    else:
        record = made[-1]
        result = record.get("result") if isinstance(record.get("result"), dict) else {}
        assert isinstance(result, dict)
        differ: list[str] = []

        def compare(name: str, in_row: Any, in_record: Any) -> None:
            if in_row != in_record or type(in_row) is not type(in_record):
                differ.append(f"{name} (row {_show(in_row)}, record {_show(in_record)})")

        compare("action", row.action, result.get("action", _MISSING))
        compare("escalated", row.escalated, result.get("escalated", _MISSING))
        compare("actor", row.actor_id, record.get("actor_id", _MISSING))
        compare("tenant", row.tenant_id, record.get("tenant_id", _MISSING))
        compare("call digest", row.call_digest, record.get("call_digest", _MISSING))
        if time_ms(record.get("timestamp")) != row.at_ms:
            differ.append(f"time (row {_iso(row.at_ms)}, record {_show(record.get('timestamp', _MISSING))})")
        listed = result.get("approvers", _MISSING)
        if not (isinstance(listed, list) and listed == list(row.approvers)):
            differ.append(f"approvers (row {_show(row.approvers)}, record {_show(listed)})")
        if differ:
            problems.append(f"the row differs from its decision record in {', '.join(differ)}")
        if row.action == "deny" and not counts_for_actor(row) and _record_counts(record, result):
            problems.append("the deny does not count towards escalation, but its decision record is a deny that counts")
    answers = [r for r in records if r.get("type") in ("approval", "rejection")]
    status = None if row.approval is None else row.approval.status
    if status in ("approved", "rejected", "executed"):
        problem = answer_problem(row, records)
        if problem is not None:
            reviewer = None if row.approval is None else row.approval.reviewer_id
            problems.append(f"{status} by {'nobody' if reviewer is None else reviewer}, but {problem}")
    elif answers:
        kinds = ", ".join(f"{_js(a.get('type', _MISSING))} by {_js(a.get('reviewer_id', _MISSING))} (seq {_js(a.get('seq', _MISSING))})" for a in answers)
        problems.append(f"the records hold {kinds}, but the row {'is ' + row.action + ', not require_approval' if status is None else 'is ' + status}")
    return problems


def cross_check_postgres_store(url: Optional[str] = None, schema: str = DEFAULT_SCHEMA, since_ms: Optional[int] = None) -> CrossCheckResult:
    """
    Cross-check ``<schema>.decisions`` against ``<schema>.records``; run it after the chain verified
    (verify_postgres_log): it trusts each record's line. Never raises for a mismatch.
    """
    from .driver import connect

    check_url(url, "cross_check_postgres_store")
    check_schema(schema, "cross_check_postgres_store")
    since = -(2**53 - 1) if since_ms is None else since_ms
    decisions = f"{quote_ident(schema)}.decisions"
    table = f"{quote_ident(schema)}.records"
    mismatches: list[StoreMismatch] = []
    total = 0

    def add(m: StoreMismatch) -> None:
        nonlocal total
        total += 1
        if len(mismatches) < MAX_MISMATCHES:
            mismatches.append(m)

    with connect(url, autocommit=True) as conn:
        counts = conn.execute(f"SELECT (SELECT count(*) FROM {decisions} WHERE at_ms >= %s), (SELECT count(*) FROM {table})", (since,)).fetchone()
        row_count, record_count = int(counts[0]), int(counts[1])
        if record_count == 0 and row_count > 0:
            problem = f"{row_count} decision rows, but {schema}.records is empty: this schema keeps no records, so its store cannot be checked"
            return CrossCheckResult(False, schema, row_count, 0, (StoreMismatch("*", problem),), 1)
        select = ", ".join(f"d.{c}" for c in READ_COLUMNS)
        after = ""
        while True:
            rows = conn.execute(
                f"SELECT {select}, (SELECT array_agg(r.line ORDER BY r.seq) FROM {table} r WHERE r.decision_id = d.id) "
                f"FROM {decisions} d WHERE d.id > %s AND d.at_ms >= %s ORDER BY d.id LIMIT {PAGE}",
                (after, since),
            ).fetchall()
            for row in rows:
                stored = _stored(row[: len(READ_COLUMNS)])
                lines = [_parse_line(line) for line in (row[len(READ_COLUMNS)] or [])]
                for problem in row_problems(stored, lines):
                    add(StoreMismatch(stored.id, problem))
                after = stored.id
            if len(rows) < PAGE:
                break
        seq_after = 0
        while True:
            rows = conn.execute(
                f"SELECT r.seq, r.type, r.decision_id, r.line FROM {table} r WHERE r.seq > %s AND r.type IN ('decision', 'approval', 'rejection') "
                f"AND NOT EXISTS (SELECT 1 FROM {decisions} d WHERE d.id = r.decision_id) ORDER BY r.seq LIMIT {PAGE}",
                (seq_after,),
            ).fetchall()
            for seq, type_, decision_id, line in rows:
                seq_after = int(seq)
                record = _parse_line(line)
                at = time_ms(record.get("timestamp"))
                if at is not None and at < since:
                    continue
                result = record.get("result") if isinstance(record.get("result"), dict) else {}
                assert isinstance(result, dict)
                action = result.get("action")
                what = f"decision record ({_js(result.get('action', _MISSING))})" if type_ == "decision" else f"{type_} record by {_js(record.get('reviewer_id', _MISSING))}"
                tail = ": a deny escalation no longer counts" if action == "deny" else ""
                add(StoreMismatch(decision_id, f"{what} at {_js(record.get('timestamp', _MISSING))} has no row in {schema}.decisions{tail}", seq_after))
            if len(rows) < PAGE:
                break
    if total == 0:
        return CrossCheckResult(True, schema, row_count, record_count)
    return CrossCheckResult(False, schema, row_count, record_count, tuple(mismatches), total)
