"""legacy_app package."""
