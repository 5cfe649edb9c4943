"""diffs package."""
