"""The CLI's client of the admin API: one request, its JSON answer, or one clear `ShadowdiffError`."""

from __future__ import annotations

from typing import Any

import httpx

from proxy.errors import ShadowdiffError


def call_admin(
    method: str,
    admin_url: str,
    path: str,
    *,
    json: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The JSON object the admin API answered; a `ShadowdiffError` naming what went wrong otherwise."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = admin_url.rstrip("/") + path
    try:
        response = httpx.request(method, url, json=json, params=params, headers=headers, timeout=timeout)
    except httpx.ConnectError:
        raise ShadowdiffError(f"cannot reach the admin API at {admin_url}: is `shadowdiff proxy` running?") from None
    except httpx.TimeoutException:
        raise ShadowdiffError(f"the admin API at {admin_url} did not answer within {timeout:g}s") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise ShadowdiffError(f"cannot call the admin API at {admin_url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        raise ShadowdiffError(
            f"the admin API at {admin_url} answered {response.status_code} without JSON: is it shadowdiff's?"
        ) from None
    if response.status_code == 401:
        raise ShadowdiffError("the admin API refused the token: pass --token or set SHADOWDIFF_ADMIN_TOKEN")
    if response.status_code >= 400 or not isinstance(data, dict):
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        raise ShadowdiffError(message or f"the admin API at {admin_url} answered {response.status_code} for {path}")
    return data
