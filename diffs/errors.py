"""The errors `diffs` raises on purpose; `proxy.errors` builds the rest of shadowdiff's hierarchy on them.

ShadowdiffError
├── ConfigError            bad configuration: names the key and the value
└── StoreError             the store could not be reached or written
"""

from __future__ import annotations


class ShadowdiffError(Exception):
    """Base of every error shadowdiff raises on purpose."""


class ConfigError(ShadowdiffError):
    pass


class StoreError(ShadowdiffError):
    pass
