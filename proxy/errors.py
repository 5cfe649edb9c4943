"""shadowdiff's exceptions.

ShadowdiffError
├── ConfigError            bad configuration: names the key and the value
├── StoreError             the store could not be reached or written
└── UpstreamError          an upstream did not give a usable response
    ├── UpstreamUnavailable    connection refused or reset   (primary → 502)
    └── UpstreamTimeout        no answer within the timeout  (primary → 504)
"""

from __future__ import annotations


class ShadowdiffError(Exception):
    """Base of every error shadowdiff raises on purpose."""


class ConfigError(ShadowdiffError):
    pass


class StoreError(ShadowdiffError):
    pass


class UpstreamError(ShadowdiffError):
    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(message)
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass
