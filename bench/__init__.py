"""Benchmarks: shadowdiff side by side with direct access and nginx `mirror`, ratios measured in one run."""
