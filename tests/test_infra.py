"""What can be checked of infra/ without a Bicep compiler or an Azure subscription: the template provides every
setting the code reads on Azure (secrets as Key Vault references), assigns every role the code needs and
nothing broader, provisions the queues and container the code names, and derives the instance limit from
the database's workers. `azd up` itself was not run here (docs/operations.md says what was exercised)."""

from __future__ import annotations

import json
import re
import stat

import pytest
import yaml

from core.handoff import HANDOFF_QUEUE
from core.storage.sql_connection import sql_authentication
from local_host.timers import ncrontab_to_croniter
from tests.conftest import ROOT

APP = (ROOT / "infra" / "app.bicep").read_text(encoding="utf-8")
MAIN = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
SETTINGS_PY = (ROOT / "core" / "settings.py").read_text(encoding="utf-8")
CLIENT_ID = "4b1f0c3e-9a57-4f7e-8a53-2f4a3c6d7e81"


def bicep_object(name: str) -> dict[str, str]:
    """`var name = { key: value ... }` (one key per line) -> {key: value as written}."""
    found = re.search(rf"^var {name} = \{{\n(.*?)^\}}", APP, re.MULTILINE | re.DOTALL)
    assert found, f"var {name} not found"
    pairs = re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*): (.+?)\s*$", found.group(1), re.MULTILINE)
    return dict(pairs)


TEMPLATE = bicep_object("appSettings")
AI_KEYS = dict(re.findall(r"\{ ([A-Z_]+): (vaultRef\([^)]*\)) \}", APP))


def code_settings() -> dict[str, str]:
    """Setting name -> Settings field, as load_settings reads them."""
    return {env: field for field, env in re.findall(r'(\w+)=_(?:text|int|bool)\(env, "(\w+)"', SETTINGS_PY)}


def secret_fields() -> set[str]:
    """Settings fields that hold a secret: declared `repr=False` (never in a log line), key-bearing strings."""
    return set(re.findall(r"^    (\w+): str = field\([^)]*repr=False", SETTINGS_PY, re.MULTILINE))


def schedule_settings(app_triggers: dict[str, object]) -> set[str]:
    return {t.schedule.strip("%") for t in app_triggers.values()  # type: ignore[attr-defined]
            if getattr(t, "type", "") == "timerTrigger" and t.schedule.startswith("%")}  # type: ignore[attr-defined]


# Needed on Azure although the code has a default: without them the app would run on SQLite (refused),
# without a queue, without a sender, or unmonitored.
NEEDED_ON_AZURE = {"SQL_CONNECTION_STRING", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
                   "APPLICATIONINSIGHTS_CONNECTION_STRING", "DB_POOL_SIZE", "AI_PROVIDER",
                   "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential",
                   "AzureWebJobsStorage__clientId"}
# Set by the platform, never by the template (Flex Consumption refuses the first two as app settings).
PLATFORM_ONLY = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                 "WEBSITE_INSTANCE_ID", "AzureWebJobsStorage", "SQLITE_PATH"}


def test_every_setting_the_code_requires_or_azure_needs_is_provided(app_triggers: dict[str, object]) -> None:
    required = set(re.findall(r'_text\(env, "(\w+)", required=True\)', SETTINGS_PY))
    assert required == {"WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"}
    schedules = schedule_settings(app_triggers)
    assert schedules == {"CONVERSATION_SWEEP_SCHEDULE", "AI_RECOVERY_SCHEDULE", "OUTBOX_SWEEP_SCHEDULE",
                         "METRICS_SAMPLE_SCHEDULE", "EVIDENCE_SWEEP_SCHEDULE"}
    missing = (required | NEEDED_ON_AZURE | schedules) - set(TEMPLATE)
    assert missing == set()


def test_the_template_sets_nothing_the_code_does_not_read(app_triggers: dict[str, object]) -> None:
    known = set(code_settings()) | NEEDED_ON_AZURE | schedule_settings(app_triggers)
    assert set(TEMPLATE) - known == set()
    assert set(AI_KEYS) <= set(code_settings())
    assert set(TEMPLATE) & PLATFORM_ONLY == set()


def test_every_secret_is_a_key_vault_reference() -> None:
    by_field = {field: env for env, field in code_settings().items()}
    secret_envs = {by_field[f] for f in secret_fields() if f in by_field}
    # The secrets that are Key Vault material (connection strings here carry no key: identities sign in).
    vault_material = secret_envs - {"SQL_CONNECTION_STRING", "AzureWebJobsStorage",
                                    "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    assert vault_material == {"WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN",
                              "OPENAI_API_KEY", "GEMINI_API_KEY"}
    for name in vault_material:
        value = TEMPLATE.get(name) or AI_KEYS.get(name, "")
        assert value.startswith("vaultRef(vault.name, '"), f"{name}: {value!r}"
    assert "keyVaultReferenceIdentity: identity.id" in APP


def test_the_sql_connection_string_signs_in_with_the_user_assigned_identity() -> None:
    template = re.search(r"^var sqlConnectionString = '(.+)'$", APP, re.MULTILINE)
    assert template
    rendered = template.group(1).replace("${identity.properties.clientId}", CLIENT_ID)
    rendered = re.sub(r"\$\{[^}]+\}", "x", rendered)
    assert sql_authentication(rendered) == f"ActiveDirectoryMsi {CLIENT_ID}"
    assert "Pwd" not in rendered and "Password" not in rendered
    assert "azureADOnlyAuthentication: true" in APP


def test_storage_is_identity_only_with_the_queues_and_container_the_code_uses() -> None:
    assert TEMPLATE["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert TEMPLATE["AzureWebJobsStorage__clientId"] == "identity.properties.clientId"
    assert "allowSharedKeyAccess: false" in APP
    assert f"var handoffQueue = '{HANDOFF_QUEUE}'" in APP
    assert "name: '${handoffQueue}-poison'" in APP
    assert "var evidenceContainer = 'evidencias'" in APP


ROLE_IDS = {
    # what the code does with it -> built-in role id
    "hand-off queue: create, send, receive, delete, poison": "974c5e8b-45b9-4653-ba55-5f855dd0a3d0",
    "host blobs (timer locks), deployment package, evidence": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Key Vault references": "4633458b-17de-408a-b874-0445c86b69e6",
}
TOO_BROAD = {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner", "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
             "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
             "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator"}


def test_every_role_the_code_needs_is_assigned_to_the_app_identity_and_nothing_broader() -> None:
    roles = dict(re.findall(r"^\s+(\w+): '([0-9a-f-]{36})'", APP, re.MULTILINE))
    assignments = re.findall(r"resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = \{(.*?)\n\}", APP,
                             re.DOTALL)
    assigned = set()
    for body in assignments:
        assert "principalId: identity.properties.principalId" in body  # only the app's identity gets roles
        role = re.search(r"roleDefinitions', roles\.(\w+)\)", body)
        assert role, body
        assigned.add(roles[role.group(1)])
    assert set(ROLE_IDS.values()) <= assigned
    assert assigned & set(TOO_BROAD) == set()
    assert "userAssignedIdentities: { '${identity.id}': {} }" in APP and "SystemAssigned" not in APP


def test_the_instance_limit_comes_from_the_database_workers_and_the_pool() -> None:
    vcores = int(re.search(r"param sqlMaxVcores int = (\d+)", APP).group(1))  # type: ignore[union-attr]
    pool = int(re.search(r"param dbPoolSize int = (\d+)", APP).group(1))  # type: ignore[union-attr]
    assert "var dbMaxWorkers = sqlMaxVcores * 75" in APP
    assert "var maxInstanceCount = max(1, (dbMaxWorkers * 4 / 5) / dbPoolSize)" in APP
    assert "maximumInstanceCount: maxInstanceCount" in APP and TEMPLATE["DB_POOL_SIZE"] == "string(dbPoolSize)"
    assert max(1, (vcores * 75 * 4 // 5) // pool) * pool <= vcores * 75  # 15 instances x 8 = 120 of 150 workers


def test_azure_runs_a_supported_python_on_flex_consumption_with_slow_idle_sweeps() -> None:
    versions = re.search(r"@allowed\(\[(.*?)\]\)\nparam pythonVersion", APP).group(1)  # type: ignore[union-attr]
    assert set(re.findall(r"'(3\.\d+)'", versions)) <= {"3.11", "3.12"}
    assert "tier: 'FlexConsumption'" in APP and "runtime: { name: 'python', version: pythonVersion }" in APP
    schedules = dict(re.findall(r"param (\w+Schedule) string = '([^']+)'", APP))
    for schedule in schedules.values():
        ncrontab_to_croniter(schedule)  # six fields, seconds first
    assert schedules == {"sweepSchedule": "0 */5 * * * *", "outboxSweepSchedule": "15 * * * * *",
                         "metricsSampleSchedule": "30 */5 * * * *"}


def test_azd_files_fit_together() -> None:
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert azure["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    hook = ROOT / azure["hooks"]["postprovision"]["posix"]["run"]
    assert hook.exists() and hook.stat().st_mode & stat.S_IXUSR
    parameters = json.loads((ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    without_default = set(re.findall(r"^param (\w+) \w+$", MAIN, re.MULTILINE))
    assert without_default - set(parameters) == set()
    outputs = set(re.findall(r"^output (\w+) ", MAIN, re.MULTILINE))
    used = set(re.findall(r"\$\{?([A-Z_]{3,})\}?", hook.read_text(encoding="utf-8")))
    assert used - {"AZURE_RESOURCE_GROUP"} <= outputs and "AZURE_RESOURCE_GROUP" in outputs
    assert "db_datareader" in hook.read_text() and "db_datawriter" in hook.read_text()
    assert "db_owner" not in hook.read_text() and "db_ddladmin" not in hook.read_text()


@pytest.mark.parametrize("path", ["infra", "tools", "azure.yaml"])
def test_infra_and_tools_stay_out_of_the_function_package(path: str) -> None:
    assert path in (ROOT / ".funcignore").read_text().splitlines()
