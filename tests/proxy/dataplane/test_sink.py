"""proxy.dataplane.sink: the logging sink, and what bounds count of an exchange."""

from __future__ import annotations

from structlog.testing import capture_logs

from proxy.dataplane.sink import LoggingSink, body_bytes
from tests.proxy.factories import exchange


def test_logging_sink_logs_one_line_per_exchange() -> None:
    with capture_logs() as logs:
        assert LoggingSink().submit(exchange(3))
    [entry] = logs
    assert entry["event"] == "exchange" and entry["id"] == "id-3"
    assert entry["primary_status"] == 200 and entry["shadow_status"] == 200 and entry["service"] == "orders"


def test_body_bytes_counts_every_side() -> None:
    item = exchange(1)
    expected = len(item.request.body) + len(item.primary.body) + (len(item.shadow.body) if item.shadow else 0)
    assert body_bytes(item) == expected > 0
