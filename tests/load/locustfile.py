"""Load test of the demo through the proxy, as the migration guide runs one (`locust -f ... --host=...`).

    .venv/bin/pip install -e '.[load]'
    .venv/bin/locust -f tests/load/locustfile.py --host http://127.0.0.1:8000            # web UI on :8089
    .venv/bin/locust -f tests/load/locustfile.py --host http://127.0.0.1:8000 \\
        --headless --users 20 --spawn-rate 5 --run-time 1m                               # in a terminal or CI

Each simulated user is a shopper with a session (`X-Session-ID`, so `shadowdiff replay` orders a capture of this
traffic per user): mostly browsing the catalogue, sometimes ordering and paying, now and then asking the AI for a
description, with the mistakes real clients make (a missing product, an invalid order, an illegal transition).
"""

from __future__ import annotations

import random
import uuid

from locust import HttpUser, between, task

PRODUCTS = 60
CUSTOMERS = 5
COUPONS = (None, None, None, "WELCOME10", "SAVE5", "FREESHIP")


class Shopper(HttpUser):
    wait_time = between(0.2, 1.5)

    def on_start(self) -> None:
        self.client.headers.update({"X-Session-ID": uuid.uuid4().hex, "Accept": "application/json"})
        self.orders: list[int] = []

    @task(10)
    def view_product(self) -> None:
        self.client.get(f"/api/products/{random.randint(1, PRODUCTS)}", name="/api/products/{id}")

    @task(4)
    def browse_catalogue(self) -> None:
        offset = random.choice((0, 10, 20, 30))
        self.client.get(f"/api/products?status=active&limit=10&offset={offset}", name="/api/products?page")

    @task(2)
    def search(self) -> None:
        self.client.get(f"/api/products?q={random.choice(('oak', 'chair', 'lamp', 'desk'))}", name="/api/products?q")

    @task(2)
    def view_customer(self) -> None:
        self.client.get(f"/api/customers/{random.randint(1, CUSTOMERS)}", name="/api/customers/{id}")

    @task(3)
    def place_order(self) -> None:
        items = [
            {"product_id": random.randint(1, PRODUCTS), "quantity": random.randint(1, 3)}
            for _ in range(random.randint(1, 3))
        ]
        body: dict[str, object] = {"customer_id": random.randint(1, CUSTOMERS), "items": items}
        coupon = random.choice(COUPONS)
        if coupon:
            body["coupon"] = coupon
        with self.client.post("/api/orders", json=body, catch_response=True) as response:
            if response.status_code == 201:
                self.orders.append(response.json()["id"])
                response.success()
            elif response.status_code == 409:  # out of stock after a while of load: a business answer
                response.success()

    @task(3)
    def follow_an_order(self) -> None:
        if not self.orders:
            return
        order = random.choice(self.orders)
        self.client.get(f"/api/orders/{order}", name="/api/orders/{id}")
        step = random.choice(("pay", "pay", "cancel"))
        with self.client.post(
            f"/api/orders/{order}/{step}", name=f"/api/orders/{{id}}/{step}", catch_response=True
        ) as r:
            if r.status_code in (400, 409):  # already paid or cancelled: V1 says 400, V2 409
                r.success()

    @task(1)
    def ai_description(self) -> None:
        self.client.post(
            f"/api/ai/products/{random.randint(1, PRODUCTS)}/description", name="/api/ai/products/{id}/description"
        )

    @task(1)
    def mistakes(self) -> None:
        with self.client.get("/api/products/99999", name="/api/products/{missing}", catch_response=True) as r:
            if r.status_code == 404:
                r.success()
        invalid = {"customer_id": 1, "items": [{"product_id": 1, "quantity": 0}]}
        with self.client.post("/api/orders", json=invalid, name="/api/orders (invalid)", catch_response=True) as r:
            if r.status_code in (400, 422):
                r.success()
