"""`python -m bench.compare_bench`: comparisons per second on one core, for ~2 KB order bodies.

Cases: byte-equal bodies (the fast path), the same document written differently (parse-equal), three changed fields,
and for scale: a shuffled list under an unordered rule with one and with two changed items (the second pays for
deepdiff's pairing), a list of records aligned by id (reordered, ids turned strings, one record changed), an HTML
page compared line by line, and a whole `Comparer.compare` with a secondary (two comparisons, noise flags, counts).
Each case runs for `--seconds`, best of `--repeat`; CPU time is the process's, so a busy machine shows in wall time
more than in CPU time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from diffs.comparer import Comparer
from diffs.exchange import Exchange, RecordedRequest, Role, SideResponse
from diffs.response_diff import compare_responses
from diffs.rules import CompareRules
from proxy.config import ServiceConfig

HEADERS = (("content-type", "application/json"), ("date", "Sat, 28 Nov 2026 14:48:58 GMT"), ("server", "uvicorn"))
RECOMMENDED = CompareRules(ignore=("**.created_at", "**.updated_at", "root.order_number"))


def order(items: int = 14, **changes: Any) -> dict[str, Any]:
    lines = [
        {
            "product_id": k,
            "sku": f"SKU-{k:04d}",
            "name": f"Walnut desk, model {k}",
            "quantity": 2,
            "unit_price": "11.00",
            "line_total": "22.00",
        }
        for k in range(items)
    ]
    body = {
        "id": 1,
        "order_number": "ORD-5F3A9C1B",
        "customer_id": 1,
        "status": "pending",
        "coupon": None,
        "items": lines,
        "subtotal": f"{22 * items}.00",
        "discount": "0.00",
        "shipping": "0.00",
        "total": f"{22 * items}.00",
        "created_at": "2026-11-28T14:48:58.123456+00:00",
        "updated_at": "2026-11-28T14:48:58.123456+00:00",
    }
    body.update(changes)
    return body


def side(role: Role, body: bytes) -> SideResponse:
    return SideResponse(role, "v2" if role is Role.SHADOW else "v1", 200, HEADERS, body, 10.0)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    run: Callable[[], object]
    size: int


def cases() -> list[Case]:
    base = order()
    compact = orjson.dumps(base)
    pretty = orjson.dumps(base, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    changed = order(status="paid", total="177.00")
    changed["items"][3]["quantity"] = 3
    changed_bytes = orjson.dumps(changed)
    shuffled = order()
    random.Random(7).shuffle(shuffled["items"])
    shuffled["items"][0]["unit_price"] = "12.00"
    shuffled_two = order()
    random.Random(7).shuffle(shuffled_two["items"])
    shuffled_two["items"][0]["unit_price"] = "12.00"
    shuffled_two["items"][1]["quantity"] = 5

    p, s = side(Role.PRIMARY, compact), side(Role.SHADOW, compact)
    s_pretty, s_changed = side(Role.SHADOW, pretty), side(Role.SHADOW, changed_bytes)
    s_shuffled = side(Role.SHADOW, orjson.dumps(shuffled))
    s_shuffled_two = side(Role.SHADOW, orjson.dumps(shuffled_two))
    none, unordered = CompareRules(), CompareRules(unordered=("root.items",))

    def compare(a: SideResponse, b: SideResponse, rules: CompareRules) -> Callable[[], object]:
        return lambda: compare_responses(a, b, rules, exchange_id="req-1", endpoint="GET /api/orders/{id}")

    records = [{"id": k, "title": f"Post {k}", "author": "ann", "views": 10 * k} for k in range(30)]
    v2_records = [{**r, "id": str(r["id"])} for r in reversed(records)]
    v2_records[4]["views"] = 7
    listed = orjson.dumps({"items": records})
    by_id = compare(side(Role.PRIMARY, listed), side(Role.SHADOW, orjson.dumps({"items": v2_records})), none)
    html = "\n".join(["<html>", "<body>", *(f"<p>paragraph {k}</p>" for k in range(80)), "</body>", "</html>"])
    v2_html = html.replace("paragraph 7<", "para 7<").replace("<body>", "<body>\n<nav></nav>")
    page = [("content-type", "text/html; charset=utf-8")]
    html_case = compare(
        SideResponse(Role.PRIMARY, "v1", 200, tuple(page), html.encode(), 10.0),
        SideResponse(Role.SHADOW, "v2", 200, tuple(page), v2_html.encode(), 10.0),
        none,
    )

    comparer = Comparer({"orders": ServiceConfig(rules=RECOMMENDED)})
    generated = order(order_number="ORD-00000001", created_at="2026-11-28T15:00:00+00:00")
    secondary = SideResponse(Role.SECONDARY, "v1", 200, HEADERS, orjson.dumps(generated), 10.0)
    request = RecordedRequest("GET", "/api/orders/1", "", (), b"")
    exchange = Exchange("req-1", datetime.now(UTC), "orders", request, p, s_changed, secondary)
    equal_exchange = Exchange("req-2", datetime.now(UTC), "orders", request, p, s)
    return [
        Case("equal bytes (fast path)", compare(p, s, none), len(compact)),
        Case("parse-equal, bytes differ", compare(p, s_pretty, none), len(pretty)),
        Case("3 fields differ", compare(p, s_changed, none), len(changed_bytes)),
        Case("3 fields differ, ignore rules", compare(p, s_changed, RECOMMENDED), len(changed_bytes)),
        Case("unordered list, 1 item differs", compare(p, s_shuffled, unordered), len(compact)),
        Case("unordered, 2 differ (deepdiff)", compare(p, s_shuffled_two, unordered), len(compact)),
        Case("list by id: reordered, 1 differs", by_id, len(listed)),
        Case("HTML, compared line by line", html_case, len(html)),
        Case("Comparer: equal, no secondary", lambda: comparer.compare(equal_exchange), len(compact)),
        Case("Comparer: 3 diffs + secondary", lambda: comparer.compare(exchange), len(changed_bytes)),
    ]


def measure(run: Callable[[], object], seconds: float, repeat: int) -> tuple[float, float]:
    """(best comparisons per second of wall time, CPU µs per comparison in that run)."""
    best_rate, best_cpu = 0.0, 0.0
    for _ in range(repeat):
        count, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        deadline = wall0 + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                run()
            count += 100
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if count / wall > best_rate:
            best_rate, best_cpu = count / wall, cpu / count * 1e6
    return best_rate, best_cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per run (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, best kept (default 3)")
    args = parser.parse_args(argv)
    print(f"{'case':<32} {'body':>7} {'comparisons/s':>14} {'µs CPU each':>12}")
    for case in cases():
        case.run()  # warm the caches (compiled rules, templates)
        rate, cpu = measure(case.run, args.seconds, args.repeat)
        print(f"{case.name:<32} {case.size:>6}B {rate:>14,.0f} {cpu:>12.1f}")


if __name__ == "__main__":
    main()
