"""A small stand-in for Azure Functions Core Tools, for machines where it cannot be installed."""
