"""The alert rules, written once here and rendered as Bicep (alerts.bicep) and ARM JSON (alerts.json).

Each rule names an `alerta_*` query of queries.kql, so the text that pages someone is the text the
tests parse. `python -m monitoring.alerts` rewrites both files; tests/test_monitoring.py fails when a
committed file differs from what this module renders (no hand edits that drift apart).

Deploy either file into the resource group of the Application Insights component:
    az deployment group create -g <rg> -f monitoring/alerts.bicep \
        -p appInsightsId=<component resource id> actionGroupId=<action group resource id>
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERIES_FILE = HERE / "queries.kql"
BICEP_FILE = HERE / "alerts.bicep"
ARM_FILE = HERE / "alerts.json"
API_VERSION = "2021-08-01"  # Microsoft.Insights/scheduledQueryRules, GA
_HEADER = re.compile(r"^// name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(path: Path = QUERIES_FILE) -> dict[str, str]:
    """Named queries of a `.kql` file: `// name: x` headers, comment lines dropped."""
    parts = _HEADER.split(path.read_text(encoding="utf-8"))
    queries: dict[str, str] = {}
    for i in range(1, len(parts), 2):
        name = parts[i]
        lines = [ln for ln in parts[i + 1].splitlines() if not ln.strip().startswith("//")]
        body = "\n".join(lines).strip()
        if name in queries:
            raise ValueError(f"query {name} defined twice")
        if not body:
            raise ValueError(f"query {name} is empty")
        queries[name] = body
    return queries


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str  # suffix of the rule's resource name
    display: str
    description: str  # what it means and what to do: docs/operations.md, "Alerts", has the long form
    query: str  # an `alerta_*` name in queries.kql
    measure: str  # the numeric column the query returns
    aggregation: str  # Total | Maximum | Average | Minimum
    operator: str  # GreaterThan | GreaterThanOrEqual | LessThan ...
    threshold: int  # Bicep has no float literals; every threshold here is whole
    severity: int  # 0 critical ... 4 verbose
    frequency: str  # ISO 8601 duration
    window: str
    # Failing evaluations before it fires. Kept at 1: with more, the service splits the window into
    # time bins, which these single-row queries do not produce; the window itself does the smoothing.
    periods: int = 1


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "race-errors", "Race errors altos (locks de conversación)",
        "Más de 30 leases vencidos (THREAD_LOCK_TIMEOUT) en 5 min, evaluado cada minuto "
        "(rate(race_errors_total[5m]) > 0.1). Ver docs/operations.md#race-errors.",
        "alerta_race_errors", "raceErrors", "Total", "GreaterThan", 30, 2, "PT1M", "PT5M",
    ),
    AlertRule(
        "runs-huerfanos", "Runs de IA huérfanos cancelados",
        "La recuperación canceló runs de IA atascados (ORPHANED_RUN_CANCELLED). Informativo; si se repite, "
        "ver docs/operations.md#runs-huerfanos.",
        "alerta_runs_huerfanos", "cancelados", "Total", "GreaterThan", 0, 3, "PT15M", "PT15M",
    ),
    AlertRule(
        "tasa-errores", "Tasa de errores > 2 %",
        "Más del 2 % de las invocaciones fallaron en 15 min (mínimo 20). Ver docs/operations.md#tasa-errores.",
        "alerta_tasa_errores", "tasaErrores", "Maximum", "GreaterThan", 2, 1, "PT5M", "PT15M",
    ),
    AlertRule(
        "latencia-webhook", "Webhook p95 > 3 s",
        "El p95 de POST /api/whatsapp/webhook superó 3 s en 15 min; Meta reintenta entregas lentas. "
        "Ver docs/operations.md#latencia-webhook.",
        "alerta_latencia_webhook", "p95", "Maximum", "GreaterThan", 3000, 2, "PT5M", "PT15M",
    ),
    AlertRule(
        "reintentos-concurrencia", "Reintentos de concurrencia > 20/hora",
        "Más de 20 [ConcurrencyRetry] en una hora . Ver docs/operations.md#reintentos-concurrencia.",
        "alerta_reintentos_concurrencia", "reintentos", "Total", "GreaterThan", 20, 2, "PT15M", "PT1H",
    ),
    AlertRule(
        "envios-error-incierto", "Envíos en error o incierto",
        "Hay filas de ColaEnvios en 'error' (intentos agotados) o 'incierto' (resultado desconocido). "
        "Ver docs/operations.md#envios-error-incierto.",
        "alerta_envios_error_incierto", "filas", "Maximum", "GreaterThan", 0, 2, "PT5M", "PT15M",
    ),
    AlertRule(
        "envios-abandonados", "Respuestas abandonadas sin enviar",
        "El outbox abandonó filas de ColaEnvios sin enviarlas (OUTBOX_ABANDONADO): venció su plazo (24 h para "
        "una respuesta) o Meta las rechazó OUTBOX_MAX_ATTEMPTS veces. Ver docs/operations.md#envios-abandonados.",
        "alerta_envios_abandonados", "abandonadas", "Total", "GreaterThan", 0, 1, "PT5M", "PT15M",
    ),
    AlertRule(
        "breaker-abierto", "Circuit breaker abierto",
        "Un proveedor de IA abrió su circuit breaker ([CircuitBreaker] State changed ... -> OPEN). "
        "Ver docs/operations.md#breaker-abierto.",
        "alerta_breaker_abierto", "aperturas", "Total", "GreaterThan", 0, 2, "PT5M", "PT15M",
    ),
    AlertRule(
        "entrada-atascada", "Mensajes entrantes sin procesar > 10 min",
        "La entrega pendiente más antigua de MensajesProcesados tiene más de 10 minutos. "
        "Ver docs/operations.md#entrada-atascada.",
        "alerta_entrada_atascada", "edadSegundos", "Maximum", "GreaterThan", 600, 1, "PT5M", "PT15M",
    ),
    AlertRule(
        "cola-atrasada", "Cola del worker atrasada > 60 s",
        "Una conversación esperó más de 60 s en la cola conversaciones-pendientes antes de que el worker la "
        "tomara (QUEUE_WAIT). Ver docs/operations.md#cola-atrasada.",
        "alerta_cola_atrasada", "esperaSegundos", "Maximum", "GreaterThan", 60, 2, "PT5M", "PT15M",
    ),
    AlertRule(
        "cola-poison", "Mensajes en conversaciones-pendientes-poison o worker sin arrancar",
        "El host movió un mensaje a conversaciones-pendientes-poison (maxDequeueCount agotado) o el worker no "
        "pudo arrancar (WORKER_NO_DISPONIBLE). Ver docs/operations.md#cola-poison (comando de reenvío).",
        "alerta_cola_poison", "eventos", "Total", "GreaterThan", 0, 1, "PT5M", "PT15M",
    ),
)

PARAMETERS = (
    ("appInsightsId", "string", None, "Resource ID of the Application Insights component the Function App writes to"),
    ("actionGroupId", "string", None, "Resource ID of the action group that receives the alerts"),
    ("location", "string", "resourceGroup().location", "Region of the alert rules"),
    ("namePrefix", "string", "'reportes-bot'", "Prefix of every alert rule name"),
    ("enabled", "bool", "true", "Create the rules enabled"),
)


def _check(rules: tuple[AlertRule, ...], queries: dict[str, str]) -> None:
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("alert names must be unique")
    for rule in rules:
        if rule.query not in queries:
            raise ValueError(f"{rule.name}: query {rule.query} not in queries.kql")
        if not re.search(rf"\b{re.escape(rule.measure)}\b", queries[rule.query]):
            raise ValueError(f"{rule.name}: query {rule.query} does not produce {rule.measure}")
        if "'''" in queries[rule.query]:
            raise ValueError(f"{rule.name}: a Bicep multi-line string cannot hold '''")


def render_arm(rules: tuple[AlertRule, ...] = RULES, queries: dict[str, str] | None = None) -> str:
    queries = load_queries() if queries is None else queries
    _check(rules, queries)
    defaults = {"resourceGroup().location": "[resourceGroup().location]", "'reportes-bot'": "reportes-bot",
                "true": True}
    parameters: dict[str, dict[str, object]] = {}
    for name, kind, default, description in PARAMETERS:
        parameters[name] = {"type": kind, "metadata": {"description": description}}
        if default is not None:
            parameters[name]["defaultValue"] = defaults[default]
    resources = []
    for rule in rules:
        resources.append({
            "type": "Microsoft.Insights/scheduledQueryRules",
            "apiVersion": API_VERSION,
            "name": f"[format('{{0}}-{rule.name}', parameters('namePrefix'))]",
            "location": "[parameters('location')]",
            "kind": "LogAlert",
            "properties": {
                "displayName": rule.display,
                "description": rule.description,
                "severity": rule.severity,
                "enabled": "[parameters('enabled')]",
                "evaluationFrequency": rule.frequency,
                "windowSize": rule.window,
                "scopes": ["[parameters('appInsightsId')]"],
                "autoMitigate": True,
                "criteria": {"allOf": [{
                    "query": queries[rule.query],
                    "timeAggregation": rule.aggregation,
                    "metricMeasureColumn": rule.measure,
                    "operator": rule.operator,
                    "threshold": rule.threshold,
                    "failingPeriods": {
                        "numberOfEvaluationPeriods": rule.periods,
                        "minFailingPeriodsToAlert": rule.periods,
                    },
                }]},
                "actions": {"actionGroups": ["[parameters('actionGroupId')]"]},
            },
        })
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "metadata": {"description": "Log alert rules of the failure-report bot. Generated by monitoring/alerts.py;"
                     " do not edit by hand."},
        "parameters": parameters,
        "resources": resources,
        "outputs": {
            "alertRuleNames": {
                "type": "array",
                "value": [f"[format('{{0}}-{r.name}', parameters('namePrefix'))]" for r in rules],
            }
        },
    }
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"


def _bicep_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_bicep(rules: tuple[AlertRule, ...] = RULES, queries: dict[str, str] | None = None) -> str:
    queries = load_queries() if queries is None else queries
    _check(rules, queries)
    out = [
        "// Log alert rules of the failure-report bot (Application Insights, scheduledQueryRules).",
        "// Generated by monitoring/alerts.py from monitoring/queries.kql; do not edit by hand.",
        "// az deployment group create -g <rg> -f monitoring/alerts.bicep \\",
        "//   -p appInsightsId=<component resource id> actionGroupId=<action group resource id>",
        "",
    ]
    for name, kind, default, description in PARAMETERS:
        out.append(f"@description({_bicep_string(description)})")
        out.append(f"param {name} {kind}" + (f" = {default}" if default is not None else ""))
        out.append("")
    out.append("var rules = [")
    for rule in rules:
        out += [
            "  {",
            f"    name: {_bicep_string(rule.name)}",
            f"    displayName: {_bicep_string(rule.display)}",
            f"    description: {_bicep_string(rule.description)}",
            f"    severity: {rule.severity}",
            f"    evaluationFrequency: {_bicep_string(rule.frequency)}",
            f"    windowSize: {_bicep_string(rule.window)}",
            f"    timeAggregation: {_bicep_string(rule.aggregation)}",
            f"    metricMeasureColumn: {_bicep_string(rule.measure)}",
            f"    operator: {_bicep_string(rule.operator)}",
            f"    threshold: {rule.threshold}",
            f"    periods: {rule.periods}",
            "    query: '''",
            queries[rule.query],
            "'''",
            "  }",
        ]
    out.append("]")
    out += [
        "",
        f"resource alertRules 'Microsoft.Insights/scheduledQueryRules@{API_VERSION}' = [for rule in rules: {{",
        "  name: '${namePrefix}-${rule.name}'",
        "  location: location",
        "  kind: 'LogAlert'",
        "  properties: {",
        "    displayName: rule.displayName",
        "    description: rule.description",
        "    severity: rule.severity",
        "    enabled: enabled",
        "    evaluationFrequency: rule.evaluationFrequency",
        "    windowSize: rule.windowSize",
        "    scopes: [",
        "      appInsightsId",
        "    ]",
        "    autoMitigate: true",
        "    criteria: {",
        "      allOf: [",
        "        {",
        "          query: rule.query",
        "          timeAggregation: rule.timeAggregation",
        "          metricMeasureColumn: rule.metricMeasureColumn",
        "          operator: rule.operator",
        "          threshold: rule.threshold",
        "          failingPeriods: {",
        "            numberOfEvaluationPeriods: rule.periods",
        "            minFailingPeriodsToAlert: rule.periods",
        "          }",
        "        }",
        "      ]",
        "    }",
        "    actions: {",
        "      actionGroups: [",
        "        actionGroupId",
        "      ]",
        "    }",
        "  }",
        "}]",
        "",
        "output alertRuleNames array = [for rule in rules: '${namePrefix}-${rule.name}']",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m monitoring.alerts",
        description="Render the alert rules of monitoring/alerts.py, with the alerta_* queries of queries.kql, "
                    "into alerts.json (ARM) and alerts.bicep.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed file differs from what would be rendered")
    args = parser.parse_args(argv)
    rendered = {ARM_FILE: render_arm(), BICEP_FILE: render_bicep()}
    if args.check:
        stale = [p.name for p, text in rendered.items() if p.read_text(encoding="utf-8") != text]
        print(f"out of date: {', '.join(stale)}" if stale else "alerts.json and alerts.bicep are up to date")
        return 1 if stale else 0
    for path, text in rendered.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {ARM_FILE.name} and {BICEP_FILE.name}: {len(RULES)} alert rules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
