"""proxy.dataplane.ordering: a mirrored request waits for earlier mirrored writes to the same resource, bounded."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from diffs.resources import Resource, Target, target
from proxy.dataplane.ordering import CausalOrder, read_keys, write_keys
from tests.proxy.upstreams import Recorder, Seen, Send, proxy_stack, respond, sample, settings_for
from tests.servers import run_server


def path_target(path: str) -> Target:
    segments = path.strip("/").split("/")
    template = [s if not s.isdigit() else "{id}" for s in segments]
    return target(segments, template)


def test_keys_of_writes_and_reads() -> None:
    patch = write_keys("shop", path_target("/posts/3"))
    assert patch == {("shop", "/posts", "3"), ("shop", "/posts", None)}
    assert read_keys("shop", path_target("/posts/3"), 2) == {("shop", "/posts", "3")}
    assert read_keys("shop", path_target("/posts"), 1) == {("shop", "/posts", None)}  # a list: every post's writes
    assert read_keys("shop", path_target("/posts/4"), 2).isdisjoint(patch)  # another post: no wait
    nested = read_keys("shop", path_target("/posts/3/comments"), 3)
    assert nested == {("shop", "/posts/{}/comments", None), ("shop", "/posts", "3")}
    create = write_keys("shop", path_target("/posts/3/comments"))
    assert ("shop", "/posts/{}/comments", None) in create and ("shop", "/posts", "3") in create
    assert Resource("/posts") == path_target("/posts/3").collection


async def test_a_request_waits_only_for_writes_that_came_before_it() -> None:
    order = CausalOrder(5.0)
    first = order.begin("v2", "shop", write_keys("shop", path_target("/posts/3")))
    earlier = order.earlier("v2", read_keys("shop", path_target("/posts/3"), 2))
    other_item = order.earlier("v2", read_keys("shop", path_target("/posts/4"), 2))
    listing = order.earlier("v2", read_keys("shop", path_target("/posts"), 1))
    other_side = order.earlier("secondary", read_keys("shop", path_target("/posts/3"), 2))
    assert earlier == [first.event] and listing == [first.event]
    assert other_item == [] and other_side == []
    assert order.busy("v2", "shop") and not order.busy("v2", "blog") and not order.busy("secondary", "shop")
    waiting = asyncio.get_running_loop().create_task(order.wait(earlier))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    order.done("v2", "shop", first)
    assert await waiting is True
    assert not order.busy("v2", "shop") and order.earlier("v2", {("shop", "/posts", "3")}) == []


async def test_a_create_holds_its_new_items_key_once_the_primary_answered() -> None:
    order = CausalOrder(5.0)
    create = order.begin("v2", "shop", write_keys("shop", path_target("/posts")))
    assert order.earlier("v2", {("shop", "/posts", "7")}) == []
    order.extend("v2", create, {("shop", "/posts", "7")})
    assert order.earlier("v2", {("shop", "/posts", "7")}) == [create.event]
    order.done("v2", "shop", create)
    order.extend("v2", create, {("shop", "/posts", "8")})  # too late: nothing to wait for
    assert order.earlier("v2", {("shop", "/posts", "8")}) == []


async def test_waiting_is_bounded_in_all() -> None:
    order = CausalOrder(0.1)
    writes = [order.begin("v2", "shop", {("shop", "/posts", str(n))}) for n in range(3)]
    started = time.perf_counter()
    assert await order.wait([w.event for w in writes]) is False
    assert time.perf_counter() - started < 0.5  # one bound for all of them, not one each


def slow_patches(seconds: float) -> Recorder:
    """A shadow that applies a PATCH of a product's stock only after `seconds`, and reads what it holds."""
    stock = {"3": 28}

    async def handle(seen: Seen, send: Send) -> None:
        product = seen.path.rsplit("/", 1)[-1]
        if seen.method == "PATCH":
            await asyncio.sleep(seconds)
            stock[product] = orjson.loads(seen.body)["stock"]
        if product == "products":
            await respond(send, 200, orjson.dumps([{"id": int(k), "stock": v} for k, v in stock.items()]))
        else:
            await respond(send, 200, orjson.dumps({"id": int(product), "stock": stock[product]}))

    return Recorder("v2", handle)


def applied_at_once() -> Recorder:
    stock = {"3": 28}

    async def handle(seen: Seen, send: Send) -> None:
        product = seen.path.rsplit("/", 1)[-1]
        if seen.method == "PATCH":
            stock[product] = orjson.loads(seen.body)["stock"]
        if product == "products":
            await respond(send, 200, orjson.dumps([{"id": int(k), "stock": v} for k, v in stock.items()]))
        else:
            await respond(send, 200, orjson.dumps({"id": int(product), "stock": stock[product]}))

    return Recorder("v1", handle)


async def test_a_mirrored_patch_followed_at_once_by_reads_is_seen_by_them() -> None:
    # The reproduction: GET /api/products reached V2 9 ms after the PATCH, before V2 had applied it.
    v1, v2 = applied_at_once(), slow_patches(0.3)
    async with run_server(v1) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, causal_wait_seconds=3.0)) as stack, httpx.AsyncClient() as client:
            await client.patch(f"{stack.url}/api/products/3", json={"stock": 83})
            started = time.perf_counter()
            one = await client.get(f"{stack.url}/api/products/3")
            listing = await client.get(f"{stack.url}/api/products")
            client_seconds = time.perf_counter() - started
            exchanges = await stack.sink.wait(3)
    assert client_seconds < 0.3  # the client never waits
    assert one.json() == {"id": 3, "stock": 83} and listing.json() == [{"id": 3, "stock": 83}]
    reads = [e for e in exchanges if e.request.method == "GET"]
    assert [orjson.loads(e.shadow.body) for e in reads if e.shadow is not None] == [
        {"id": 3, "stock": 83},
        [{"id": 3, "stock": 83}],
    ]
    assert sample(stack.metrics, "shadowdiff_causal_waits_total", service="products", outcome="waited") == 2


async def test_past_the_bound_the_read_is_sent_anyway_and_counted() -> None:
    v1, v2 = applied_at_once(), slow_patches(1.0)
    async with run_server(v1) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, causal_wait_seconds=0.1)) as stack, httpx.AsyncClient() as client:
            await client.patch(f"{stack.url}/api/products/3", json={"stock": 83})
            await client.get(f"{stack.url}/api/products/3")
            exchanges = await stack.sink.wait(2)
            v2.release()
    read = next(e for e in exchanges if e.request.method == "GET")
    write = next(e for e in exchanges if e.request.method == "PATCH")
    assert read.shadow is not None and orjson.loads(read.shadow.body) == {"id": 3, "stock": 28}  # the race, counted
    assert sample(stack.metrics, "shadowdiff_causal_waits_total", service="products", outcome="timeout") == 1
    # ...and not compared: its stock differs because of the race, not because V2 is wrong (a false finding before).
    assert read.skip_reason == "out_of_order" and write.skip_reason is None
    assert sample(stack.metrics, "shadowdiff_skipped_total", service="products", reason="out_of_order") == 1


def streams_patches(parts: int, pause: float, ended: list[float] | None = None) -> Recorder:
    """A primary that answers a PATCH with a body of unknown length, one part every `pause` seconds (the proxy
    streams it to the client), and reads at once; `ended` gets the time each streamed body ended."""
    stock = {"3": 28}

    async def handle(seen: Seen, send: Send) -> None:
        product = seen.path.rsplit("/", 1)[-1]
        if seen.method != "PATCH":
            await respond(send, 200, orjson.dumps({"id": int(product), "stock": stock[product]}))
            return
        stock[product] = orjson.loads(seen.body)["stock"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for n in range(parts):
            await send({"type": "http.response.body", "body": b"part %d\n" % n, "more_body": True})
            await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b""})
        if ended is not None:
            ended.append(time.perf_counter())

    return Recorder("v1", handle)


async def test_a_write_whose_response_streams_holds_later_mirrored_reads_only_until_its_head() -> None:
    # The primary's head says the write is done; how long the client takes to read the body is the client's affair,
    # not a reason to hold the shadow's next reads of that product.
    ended: list[float] = []
    v1, v2 = streams_patches(4, 0.4, ended), applied_at_once()
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = settings_for(u1, u2, causal_wait_seconds=5.0)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            async with client.stream("PATCH", f"{stack.url}/api/products/3", json={"stock": 83}) as patched:
                read = await client.get(f"{stack.url}/api/products/3")
                streamed = await patched.aread()
            exchanges = await stack.sink.wait(2)
    assert read.json() == {"id": 3, "stock": 83} and streamed == b"part 0\npart 1\npart 2\npart 3\n"
    assert [seen.method for seen in v2.seen] == ["PATCH", "GET"]
    assert v2.seen[1].at < ended[0]  # the read reached the shadow while the primary was still streaming
    get = next(e for e in exchanges if e.request.method == "GET")
    assert get.shadow is not None and orjson.loads(get.shadow.body) == {"id": 3, "stock": 83}
    assert sample(stack.metrics, "shadowdiff_causal_waits_total", service="products", outcome="timeout") == 0


async def test_a_client_that_leaves_mid_stream_leaves_the_mirrored_write_to_finish_and_be_recorded() -> None:
    v1, v2 = streams_patches(50, 0.1), applied_at_once()
    v2.delay = 0.3  # the shadow's write is still in flight when the client goes
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = settings_for(u1, u2, causal_wait_seconds=5.0)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            async with client.stream("PATCH", f"{stack.url}/api/products/3", json={"stock": 83}) as patched:
                await anext(patched.aiter_raw())
            # httpx closed that connection (the body was not read): the proxy cancels the primary's exchange.
            read = await client.get(f"{stack.url}/api/products/3")
            exchanges = await stack.sink.wait(2)
    assert read.json() == {"id": 3, "stock": 83}
    patch = next(e for e in exchanges if e.request.method == "PATCH")
    assert patch.primary.status == 200 and patch.primary.body_truncated  # cut short by the client
    assert patch.shadow is not None and patch.shadow.status == 200  # the shadow's write was not cancelled with it
    get = next(e for e in exchanges if e.request.method == "GET")
    assert get.shadow is not None and orjson.loads(get.shadow.body) == {"id": 3, "stock": 83}  # after the write
    assert sample(stack.metrics, "shadowdiff_dropped_total", reason="primary_cancelled") == 0
