"""Comparison rules as configured per service and per endpoint (validated at start-up)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_COMPARED_HEADERS = ("content-type",)


class NumericTolerance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = "**"
    """Path pattern the tolerance applies to ("**" = every number)."""
    absolute: float = Field(default=0.0, ge=0)
    relative: float = Field(default=0.0, ge=0)
    """Fraction of the primary's value, e.g. 0.01 for 1%."""


class TextSimilarity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    threshold: float = Field(default=0.8, ge=0, le=1)
    """Strings at this path match when their similarity ratio is at least this."""


class ListKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    """Path pattern of the list (`root.items`, `**.lines`)."""
    key: str
    """Field that identifies an item in it; "" compares that list by position."""


class CompareRules(BaseModel):
    """What counts as a difference. Path patterns: "root.items[*].price", "**.created_at", "items[*].updated_at"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore: tuple[str, ...] = ()
    numeric_tolerance: tuple[NumericTolerance, ...] = ()
    unordered: tuple[str, ...] = ()
    """List paths compared as multisets; "**" makes every list order-insensitive."""
    text_similarity: tuple[TextSimilarity, ...] = ()
    schema_only: tuple[str, ...] = ()
    """Paths compared by shape and type only; "root" or "**" compares the whole body so."""
    headers: tuple[str, ...] = DEFAULT_COMPARED_HEADERS
    """Response headers compared (lower-case). Volatile ones (date, server, x-request-id, ...) only if named here."""
    compare_status: bool = True
    list_key: str = "id"
    """Lists whose items are objects carrying this field are aligned by it (1 and "1" align): reordered, item
    added, item removed, and field changes of the items in both. "" compares every list by position."""
    list_keys: tuple[ListKey, ...] = ()
    """Per-list keys, overriding `list_key` where their path matches (the last match wins)."""


class NoiseConfig(BaseModel):
    """The thresholds of the one noise rule, `diffs.noise.is_finding` (Diffy's filter and defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    relative_threshold: float = Field(default=0.20, ge=0)
    """A field is a finding only when raw − noise > this × (raw + noise) (Diffy: 20%) ..."""
    absolute_threshold: float = Field(default=0.0003, ge=0)
    """... and raw − noise > this × the endpoint's compared exchanges (Diffy: 0.03%)."""


class EndpointRules(CompareRules):
    """Rules for one endpoint template, e.g. "POST /api/ai/generate", merged over its service's rules."""

    endpoint: str


def merge_rules(base: CompareRules, override: CompareRules) -> CompareRules:
    """Endpoint rules add to the service's lists; `headers`, `compare_status` and `list_key` are replaced when set
    explicitly."""
    explicit = override.model_fields_set
    return CompareRules(
        ignore=base.ignore + override.ignore,
        numeric_tolerance=base.numeric_tolerance + override.numeric_tolerance,
        unordered=base.unordered + override.unordered,
        text_similarity=base.text_similarity + override.text_similarity,
        schema_only=base.schema_only + override.schema_only,
        headers=override.headers if "headers" in explicit else base.headers,
        compare_status=override.compare_status if "compare_status" in explicit else base.compare_status,
        list_key=override.list_key if "list_key" in explicit else base.list_key,
        list_keys=base.list_keys + override.list_keys,
    )
