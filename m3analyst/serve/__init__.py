"""`m3analyst serve`: the embedded engine behind an OpenAI-compatible HTTP API (optional extra `[serve]`)."""
