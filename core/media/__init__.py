"""Evidence bodies: WhatsApp's media limits, the media API download, where bodies are stored, transcription."""
