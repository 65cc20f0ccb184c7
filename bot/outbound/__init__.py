"""The outbound side: dispatching `ColaEnvios` rows through the WhatsApp Cloud API."""
