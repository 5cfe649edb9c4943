"""v2_app package."""
