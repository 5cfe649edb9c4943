"""The OpenAPI 3 description of the /api/v1 routes, built from the same `Operation` table that builds the routes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from diffs.exchange import DiffKind


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    where: str = "query"
    type: str = "string"
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    """Relative to /api/v1, in Starlette syntax ("/exchanges/{exchange_id:path}")."""
    handler: str
    """Name of the `ApiV1` method that serves it."""
    summary: str
    params: tuple[Param, ...] = ()
    body: str | None = None
    """Name of the request body's schema in components."""
    response: str = "Object"
    mutating: bool = False
    errors: tuple[int, ...] = ()


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


NUM = {"type": "number", "nullable": True}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Object": {"type": "object"},
    "Error": _obj(
        {"error": _obj({"code": STR, "message": STR, "details": {"type": "object"}}, ("code", "message"))}, ("error",)
    ),
    "Counts": _obj(
        {
            **{k: INT for k in ("total", "mirrored", "samples", "match", "diff", "shadow_error", "skipped")},
            **{k: INT for k in ("dropped", "findings")},
            "rates": _obj({k: NUM for k in ("match", "diff", "raw_diff", "shadow_error")}),
        }
    ),
    "Percentiles": _obj({"count": INT, "p50_ms": NUM, "p90_ms": NUM, "p99_ms": NUM}),
    "Latency": _obj(
        {
            "primary": _ref("Percentiles"),
            "shadow": _ref("Percentiles"),
            "ratio": _obj({"p50": NUM, "p90": NUM, "p99": NUM}),
            "v1": _ref("Percentiles"),
            "v2": _ref("Percentiles"),
            "v2_speedup": NUM,
        }
    ),
    "Failure": _obj({"criterion": STR, "actual": NUM, "limit": {"type": "number"}, "message": STR}),
    "Readiness": _obj({"ready": BOOL, "failures": _array(_ref("Failure"))}, ("ready", "failures")),
    "Criteria": _obj(
        {"min_samples": INT, "max_diff_rate": NUM, "max_error_rate": NUM, "max_p99_ratio": NUM},
    ),
    "Field": _obj(
        {
            "endpoint": STR,
            "path": STR,
            "kinds": _array(STR),
            "raw": INT,
            "noise": INT,
            "raw_rate": NUM,
            "noise_rate": NUM,
            "verdict": {"type": "string", "enum": ["finding", "noise", "marked"]},
        }
    ),
    "Endpoint": _obj(
        {
            "service": STR,
            "endpoint": STR,
            "counts": _ref("Counts"),
            "latency": _ref("Latency"),
            "finding_fields": INT,
            "fields": _array(_ref("Field")),
        }
    ),
    "Service": _obj(
        {
            "service": STR,
            "primary": STR,
            "shadow": STR,
            "counts": _ref("Counts"),
            "latency": _ref("Latency"),
            "v2_speedup": NUM,
            "readiness": _ref("Readiness"),
            "endpoints": _array(_ref("Endpoint")),
        }
    ),
    "Report": _obj(
        {
            "schema_version": INT,
            "generated_at": STR,
            "window": _obj({"since": STR, "until": STR, "run": STR}),
            "criteria": _ref("Criteria"),
            "latency_sample_one_in": INT,
            "ready": BOOL,
            "services": _array(_ref("Service")),
        }
    ),
    "ReadinessReport": _obj(
        {
            "ready": BOOL,
            "criteria": _ref("Criteria"),
            "services": _array(
                _obj(
                    {"service": STR, "primary": STR, "samples": INT, "ready": BOOL, "failures": _array(_ref("Failure"))}
                )
            ),
        }
    ),
    "ServiceList": _obj({"services": _array(_ref("Service"))}),
    "EndpointList": _obj({"service": STR, "endpoints": _array(_ref("Endpoint"))}),
    "FieldList": _obj({"service": STR, "endpoint": STR, "fields": _array(_ref("Field"))}),
    "ExchangeSummary": _obj(
        {
            "id": STR,
            "started_at": STR,
            "service": STR,
            "method": STR,
            "path": STR,
            "endpoint": STR,
            "outcome": STR,
            "skip_reason": STR,
            "primary": {"type": "object"},
            "shadow": {"type": "object", "nullable": True},
            "diff_count": INT,
            "noise_count": INT,
            "bodies_kept": BOOL,
        }
    ),
    "ExchangePage": _obj(
        {"items": _array(_ref("ExchangeSummary")), "next_cursor": {"type": "string", "nullable": True}}
    ),
    "Exchange": {
        "allOf": [
            _ref("ExchangeSummary"),
            _obj(
                {
                    "query": STR,
                    "request": {"type": "object"},
                    "secondary": {"type": "object", "nullable": True},
                    "diffs": _array(
                        _obj(
                            {
                                "path": STR,
                                "kind": {"type": "string", "enum": [k.value for k in DiffKind]},
                                "primary": {},
                                "shadow": {},
                                "noise": BOOL,
                                "primary_at": {"type": "string", "nullable": True},
                                "shadow_at": {"type": "string", "nullable": True},
                            }
                        ),
                    ),
                }
            ),
        ]
    },
    "NoiseMark": _obj({"id": INT, "endpoint": STR, "path": STR, "note": STR, "created_at": STR}),
    "NoiseMarkList": _obj({"noise_marks": _array(_ref("NoiseMark"))}),
    "NoiseMarkInput": _obj({"endpoint": STR, "path": STR, "note": STR}, ("endpoint", "path")),
    "Deleted": _obj({"deleted": INT}),
    "Promotion": _obj({"id": INT, "service": STR, "from": STR, "to": STR, "reason": STR, "actor": STR, "at": STR}),
    "PromotionList": _obj({"promotions": _array(_ref("Promotion"))}),
    "ChangeInput": _obj({"to": {"type": "string", "enum": ["v1", "v2"]}, "reason": STR, "actor": STR}),
    "Change": _obj(
        {
            "service": STR,
            "primary": STR,
            "previous": STR,
            "changed": BOOL,
            "promotion": {"allOf": [_ref("Promotion")], "nullable": True},
        }
    ),
}

_ERROR_TEXT = {
    401: "Missing or wrong admin token.",
    404: "Not found.",
    422: "A parameter or the body did not validate.",
}
_GUARD_ERRORS = {
    "403": "Sent from another site's page (Origin or Referer), or a form without its session token.",
    "415": "A body that is not application/json.",
}
_HOST_ERROR = {"421": "The Host header names neither an IP address, a loopback name nor an allowed admin host."}


def openapi_path(path: str) -> str:
    """Starlette's "{name:converter}" as OpenAPI's "{name}"."""
    out, rest = "", path
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, after = tail.partition("}")
        out += head + "{" + name.split(":")[0] + "}"
        rest = after
    return out + rest


def _json_content(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


def _parameter(p: Param) -> dict[str, Any]:
    required = p.required or p.where == "path"
    schema = {"type": p.type}
    return {"name": p.name, "in": p.where, "required": required, "description": p.description, "schema": schema}


def openapi_document(operations: Iterable[Operation], prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.0 description of `operations`, mounted under `prefix`."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        ok = "201" if op.handler == "add_noise_mark" else "200"
        responses: dict[str, Any] = {ok: {"description": "OK", "content": _json_content(op.response)}}
        for code in op.errors:
            responses[str(code)] = {"description": _ERROR_TEXT[code], "content": _json_content("Error")}
        for status, text in {**(_GUARD_ERRORS if op.mutating else {}), **_HOST_ERROR}.items():
            responses[status] = {"description": text, "content": _json_content("Error")}
        operation: dict[str, Any] = {
            "operationId": op.handler,
            "summary": op.summary,
            "parameters": [_parameter(p) for p in op.params],
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": op.handler == "add_noise_mark",
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        if op.mutating:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(openapi_path(prefix + op.path), {})[op.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "shadowdiff report API",
            "version": "1",
            "description": "Diff reports, readiness, noise marks and promotions of a shadowdiff proxy.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
