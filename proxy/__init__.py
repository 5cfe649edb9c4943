"""shadowdiff: shadow-traffic comparison proxy."""
