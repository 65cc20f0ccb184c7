"""The Function App: the complete list of what runs. Each blueprint is a thin trigger over `bot/`."""

import azure.functions as func

from bot.functions import ai_recovery, conversation, evidence, health, metrics, outbound, reports, retention, webhook

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(webhook.bp)
app.register_functions(health.bp)
app.register_functions(conversation.bp)
app.register_functions(outbound.bp)
app.register_functions(ai_recovery.bp)
app.register_functions(metrics.bp)
app.register_functions(retention.bp)
app.register_functions(reports.bp)
app.register_functions(evidence.bp)
