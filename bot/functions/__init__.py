"""Azure Functions blueprints: each trigger is a few lines over a plain async function in `bot/`."""
