"""The review surface: the web report, /api/v1, OpenAPI and the CLI's report, check and status."""
