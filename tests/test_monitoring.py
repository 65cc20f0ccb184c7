"""monitoring/: every KQL query parses (Microsoft's Kusto parser when node has it, a structural check
always) and matches what the app really emits; the alert rules are valid ARM JSON and Bicep and agree
with their single source; host.json keeps what the alerts read.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess

import pytest

from bot.conversation.worker import MESSAGE_RESERVE_MS
from core import events
from core.settings import load_settings
from monitoring.alerts import ARM_FILE, BICEP_FILE, PARAMETERS, RULES, load_queries, render_arm, render_bicep
from tests.conftest import ROOT

QUERIES = load_queries()
TABLES = {"traces", "requests", "customMetrics", "exceptions", "dependencies"}
OPERATORS = {"where", "summarize", "extend", "project", "order", "sort", "take", "top", "render", "union",
             "count", "distinct", "join", "mv-expand", "parse", "limit"}
# The operations team's queries, kept as they wrote them (their filters and extracts must survive verbatim).
SEED_QUERIES = {
    "reintentos_concurrencia": ['message contains "ConcurrencyRetry"', "Reintentos=count() by bin(timestamp, 5m)",
                                "render timechart"],
    "race_conditions": ['message contains "ConcurrencyError"', "RaceConditions=dcount(telefono) by bin(timestamp, 1h)"],
    "sesiones_con_race_conditions": ['message contains "ConcurrencyError"'],
    "timeouts_ia": ['message contains "[Timeout]"',
                    r'Timeouts=count() by operation=extract(@"Timeout\] (\w+)", 1, message), bin(timestamp, 5m)'],
    "duplicados_por_reintento": ['message contains "Mensaje duplicado detectado (MERGE)"',
                                 r'reintento=extract(@"reintento #(\d+)", 1, message)', "render columnchart"],
    "circuit_breaker_transiciones": ['message contains "CircuitBreaker"', 'message contains "State changed"',
                                     "project timestamp, message", "order by timestamp desc"],
}
REQUIRED_ALERTS = {"race-errors", "runs-huerfanos", "tasa-errores", "latencia-webhook", "reintentos-concurrencia",
                   "envios-error-incierto", "breaker-abierto"}


# -- KQL ---------------------------------------------------------------------------------------------


def _strip_strings(query: str) -> str:
    """The query with string literals blanked, so brackets and pipes inside them do not count."""
    return re.sub(r'@"[^"]*"|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', query)


def structural_problems(query: str) -> list[str]:
    problems = []
    code = _strip_strings(query)
    if code.count('"') % 2:
        problems.append("unbalanced quotes")
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in code:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                problems.append(f"unbalanced {ch}")
                break
    if stack:
        problems.append(f"unclosed {stack}")
    first = code.split()[0]
    if first not in TABLES and first != "union":
        problems.append(f"starts with {first!r}, not a known table")
    depth, segment, segments = 0, "", []
    for ch in code:  # split on top-level pipes only
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "|" and depth == 0:
            segments.append(segment)
            segment = ""
        else:
            segment += ch
    segments.append(segment)
    for seg in segments[1:]:
        operator = seg.split()[0] if seg.split() else ""
        if operator not in OPERATORS:
            problems.append(f"unknown operator {operator!r}")
    for table in re.findall(r"\(\s*([A-Za-z]+)\s*\|", code):
        if table not in TABLES:
            problems.append(f"unknown table {table!r} in a subquery")
    return problems


def test_every_query_is_named_and_seed_queries_are_kept() -> None:
    assert len(QUERIES) >= 25
    for name, fragments in SEED_QUERIES.items():
        for fragment in fragments:
            assert fragment in QUERIES[name], f"{name}: seed text {fragment!r} changed"
    wanted = {"contencion_locks", "runs_huerfanos", "estados_cola_envios", "latencia_webhook", "tasa_errores"}
    assert wanted <= set(QUERIES)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_structure(name: str) -> None:
    assert structural_problems(QUERIES[name]) == []


def test_structural_check_catches_broken_queries() -> None:
    assert structural_problems("traces | where message contains \"x\" | summarize count(") != []
    assert structural_problems("tracez | take 1") != []
    assert structural_problems("traces | wher message contains \"x\"") != []
    assert structural_problems('traces | where message contains "a | b (" | take 1') == []


NODE = shutil.which("node")
KQL_CHECK = ROOT / "monitoring" / "kql_check.js"
KUSTO = ROOT / "monitoring" / "node_modules" / "@kusto" / "language-service-next"


def kusto_errors(queries: dict[str, str]) -> dict[str, list[str]]:
    payload = json.dumps([{"name": n, "query": q} for n, q in queries.items()])
    proc = subprocess.run([NODE or "node", str(KQL_CHECK)], input=payload, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row["errors"] for row in json.loads(proc.stdout)}


@pytest.mark.skipif(NODE is None or not KUSTO.exists(),
                    reason="Kusto parser not installed: npm ci --prefix monitoring (needs node)")
def test_every_query_parses_and_binds_with_the_kusto_parser() -> None:
    errors = kusto_errors(QUERIES)
    assert {name: errs for name, errs in errors.items() if errs} == {}
    broken = kusto_errors({"typo": 'traces | where mesage contains "x"', "table": "request | take 1",
                           "syntax": "traces | summarize count( by bin(timestamp, 5m)"})
    assert all(broken.values()), broken  # the checker does catch mistakes


# -- the queries match what the app emits -------------------------------------------------------------


@pytest.fixture(scope="module")
def emitted() -> list[str]:
    """One of each event, as core/events.py writes them."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("reportes_bot.eventos")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        events.lock_acquired("5215512345678", 30_000, 1)
        events.lock_busy("5215512345678")
        events.lock_timeout("5215512345678", 30_000, 1)
        events.orphaned_runs_recovery_start(300_000)
        events.orphaned_run_cancelled("5215512345678", "resp_1", "in_progress", 420_000)
        events.orphaned_runs_recovery_complete(15, 1)
        events.concurrency_retry("updateSession", "5215512345678", 1, 3, 52)
        events.concurrency_exhausted("updateSession", "5215512345678", 3, 2)
        events.ai_timeout("extractStructuredData", 4000)
        events.breaker_state_changed("gemini", "HALF_OPEN", "OPEN", 1)
        events.duplicate_delivery("wamid.X1", 2, "5215512345678")
        events.reply_sent("5215512345678", 182)
        events.queue_wait("5215512345678", 65_000, 1)
        events.handoff_failed("webhook", 2, "cola no disponible")
        events.worker_unavailable("*********5678", "configuracion", "Configuración inválida: WHATSAPP_APP_SECRET")
        events.outbound_abandoned(7, "5215512345678", "plazo", "venció su plazo sin poder enviarse")
    finally:
        logger.removeHandler(handler)
    return [r.getMessage() for r in records]


def _message_clauses(query: str) -> list[list[tuple[str, str]]]:
    """`where` clauses on `message`, as a list of OR-groups of (operator, literal); AND between groups."""
    groups = []
    for clause in re.findall(r"\|\s*where\s+([^|]*)", query):
        tests = re.findall(r'message\s+(contains|startswith)\s+"([^"]*)"', clause)
        if not tests:
            continue
        if " or " in clause:
            groups.append(tests)
        else:
            groups.extend([[t] for t in tests])
    return groups


def _matches(line: str, groups: list[list[tuple[str, str]]]) -> bool:
    def one(op: str, text: str) -> bool:
        return line.startswith(text) if op == "startswith" else text.lower() in line.lower()

    return all(any(one(op, text) for op, text in group) for group in groups)


TRACE_QUERIES = sorted(n for n, q in QUERIES.items() if q.startswith("traces") and _message_clauses(q))


@pytest.mark.parametrize("name", TRACE_QUERIES)
def test_trace_query_finds_what_the_app_writes(name: str, emitted: list[str]) -> None:
    query = QUERIES[name]
    hits = [line for line in emitted if _matches(line, _message_clauses(query))]
    assert hits, f"{name} matches none of the emitted lines"
    for pattern in re.findall(r'extract\(@"([^"]+)",\s*1,\s*message\)', query):
        captured = [m.group(1) for line in hits if (m := re.search(pattern, line))]
        assert captured and all(captured), f"{name}: extract {pattern!r} captures nothing"


def test_alert_queries_match_exactly_their_event(emitted: list[str]) -> None:
    def count(name: str) -> int:
        return sum(_matches(line, _message_clauses(QUERIES[name])) for line in emitted)

    assert count("alerta_race_errors") == 1  # the timeout; a busy lease is normal and counts elsewhere
    assert count("alerta_runs_huerfanos") == 1
    assert count("alerta_reintentos_concurrencia") == 1
    assert count("alerta_breaker_abierto") == 1


# -- alert rules ----------------------------------------------------------------------------------------


def test_committed_alert_files_are_the_rendered_ones() -> None:
    assert ARM_FILE.read_text(encoding="utf-8") == render_arm(), "run: python -m monitoring.alerts"
    assert BICEP_FILE.read_text(encoding="utf-8") == render_bicep(), "run: python -m monitoring.alerts"


def test_arm_template_is_valid() -> None:
    template = json.loads(ARM_FILE.read_text(encoding="utf-8"))
    assert template["$schema"].endswith("deploymentTemplate.json#")
    assert template["contentVersion"] == "1.0.0.0"
    params = template["parameters"]
    assert set(params) == {p[0] for p in PARAMETERS}
    assert all(p["type"] in ("string", "bool", "int", "array", "object") for p in params.values())
    text = json.dumps(template)
    for used in set(re.findall(r"parameters\('(\w+)'\)", text)):
        assert used in params, f"undeclared parameter {used}"
    names = set()
    duration = re.compile(r"^PT(\d+[MH])$")
    for resource in template["resources"]:
        assert resource["type"] == "Microsoft.Insights/scheduledQueryRules"
        assert re.match(r"^\d{4}-\d{2}-\d{2}(-preview)?$", resource["apiVersion"])
        assert resource["kind"] == "LogAlert"
        props = resource["properties"]
        assert 0 <= props["severity"] <= 4
        assert duration.match(props["evaluationFrequency"]) and duration.match(props["windowSize"])
        assert props["scopes"] == ["[parameters('appInsightsId')]"]
        assert props["actions"]["actionGroups"] == ["[parameters('actionGroupId')]"]
        (criterion,) = props["criteria"]["allOf"]
        assert criterion["timeAggregation"] in ("Count", "Total", "Average", "Minimum", "Maximum")
        assert criterion["operator"] in ("GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual", "Equal")
        assert isinstance(criterion["threshold"], int | float)
        assert criterion["metricMeasureColumn"] in criterion["query"]
        assert not criterion["query"].startswith("[")  # would be read as an ARM expression
        assert structural_problems(criterion["query"]) == []
        for value in (resource["name"], resource["location"]):
            assert value.startswith("[") and value.endswith("]") and value.count("(") == value.count(")")
        names.add(re.search(r"\}-([a-z-]+)'", resource["name"]).group(1))
    assert REQUIRED_ALERTS <= names


def _bicep_code(text: str) -> str:
    """Bicep with comments and string contents removed; interpolations `${...}` are kept as code."""
    text = re.sub(r"'''.*?'''", "''", text, flags=re.DOTALL)  # multi-line strings do not interpolate

    def keep_interpolations(match: re.Match[str]) -> str:
        return "'" + " ".join(re.findall(r"\$\{([^}]*)\}", match.group(0))) + "'"

    text = re.sub(r"'(?:[^'\\]|\\.)*'", keep_interpolations, text)
    return re.sub(r"//[^\n]*", "", text)


def test_bicep_is_well_formed() -> None:
    text = BICEP_FILE.read_text(encoding="utf-8")
    assert "\t" not in text
    code = _bicep_code(text)
    stack: list[str] = []
    for ch in code:
        if ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            assert stack and stack.pop() == {")": "(", "]": "[", "}": "{"}[ch], "unbalanced brackets"
    assert not stack
    declared = re.findall(r"^param (\w+) (string|bool|int|array|object)( = .+)?$", text, flags=re.MULTILINE)
    assert {d[0] for d in declared} == {p[0] for p in PARAMETERS}
    body = code.split("var rules", 1)[1]
    for name, *_ in declared:
        assert re.search(rf"\b{name}\b", body), f"param {name} unused"
    assert re.search(r"^resource alertRules 'Microsoft\.Insights/scheduledQueryRules@\d{4}-\d{2}-\d{2}' = \[for rule "
                     r"in rules: \{$", text, flags=re.MULTILINE)
    queries = re.findall(r"query: '''\n(.*?)\n'''", text, flags=re.DOTALL)
    assert len(queries) == len(RULES)
    assert queries == [QUERIES[r.query] for r in RULES]
    for line in code.splitlines():  # object properties are `name: value`, one per line
        stripped = line.strip()
        if stripped and not stripped.startswith(("@", "param ", "var ", "resource ", "output ", "}", "]", "{", "[")):
            assert re.match(r"^[A-Za-z]\w*: \S", stripped) or re.match(r"^[A-Za-z]\w*$", stripped), line


# -- host.json ------------------------------------------------------------------------------------------


def test_host_json_keeps_what_the_alerts_read(tmp_path) -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["version"] == "2.0"
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert {"Trace", "Exception"} <= excluded  # the alerts count traces; exceptions are rare and precious
    levels = host["logging"]["logLevel"]
    assert levels["Function"] == "Information"  # our INFO events (THREAD_LOCK_ACQUIRED, duplicates)
    assert levels["Host.Results"] == "Information"  # the requests table (error rate, p95)
    h, m, s = (int(x) for x in host["functionTimeout"].split(":"))
    timeout_ms = ((h * 60 + m) * 60 + s) * 1000
    budget = load_settings({"WHATSAPP_APP_SECRET": "x", "WHATSAPP_VERIFY_TOKEN": "y"}).worker_budget_ms
    # A safety net above the worker's budget plus one whole message and its sends, never what stops it.
    assert timeout_ms >= 2 * budget + MESSAGE_RESERVE_MS


# -- Prometheus rules -----------------------------------------------------------------------------------


def test_prometheus_rules_keep_seed_000_and_use_only_exposed_metrics() -> None:
    yaml = pytest.importorskip("yaml")
    from core.metrics import REGISTRY
    from core.metrics_export import DB_GAUGES

    doc = yaml.safe_load((ROOT / "monitoring" / "prometheus-rules.yml").read_text(encoding="utf-8"))
    (group,) = doc["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    assert rules["HighRaceErrors"]["expr"] == "rate(race_errors_total[5m]) > 0.1"
    assert rules["HighRaceErrors"]["for"] == "2m" and rules["HighRaceErrors"]["labels"]["severity"] == "warning"
    assert rules["HighRaceErrors"]["annotations"]["summary"] == "Alto número de race errors detectados"
    assert rules["OrphanedRunsDetected"]["expr"] == "orphaned_runs_cancelled_total > 0"
    assert rules["OrphanedRunsDetected"]["annotations"]["summary"] == "Runs huérfanos cancelados durante recuperación"
    exposed = {s.name for f in REGISTRY.collect() for s in f.samples} | {f.name for f in REGISTRY.collect()}
    exposed |= {f"{f.name}_total" for f in REGISTRY.collect() if f.type == "counter"}
    exposed |= set(DB_GAUGES) | {"metrics_db_up"}
    functions = {"rate", "increase", "sum", "max", "by", "min", "avg"}
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["runbook"].split("#")[1] in {r.name for r in RULES}
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", rule["expr"])
        for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", expr):
            assert name in exposed or name in functions or name == "provider", f"{rule['alert']}: {name}"
