"""WhatsApp Cloud API: outgoing message values and the Graph API client."""
