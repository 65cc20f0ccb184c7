"""WhatsApp Cloud API webhook ingress: signature check, parsing, atomic registration, drain hand-off."""
