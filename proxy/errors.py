"""shadowdiff's exceptions: the base and the store's come from `diffs.errors`, the upstreams' are the proxy's own.

ShadowdiffError
├── ConfigError            bad configuration: names the key and the value
├── StoreError             the store could not be reached or written
└── UpstreamError          an upstream did not give a usable response
    ├── UpstreamUnavailable    connection refused or reset   (primary → 502)
    └── UpstreamTimeout        no answer within the timeout  (primary → 504)
"""

from __future__ import annotations

from diffs.errors import ConfigError, ShadowdiffError, StoreError

__all__ = ["ConfigError", "ShadowdiffError", "StoreError", "UpstreamError", "UpstreamTimeout", "UpstreamUnavailable"]


class UpstreamError(ShadowdiffError):
    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(message)
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass
