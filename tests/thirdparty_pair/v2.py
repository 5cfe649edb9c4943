"""Inkwell 2.x: the same resources with string ids, cursor envelopes and newest-first lists (see the package docs)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
HANDLES = ["ann", "bob", "cy", "dee", "eli", "fay", "gus", "hal"]


@dataclass
class Store:
    """Insertion-ordered tables keyed by string id."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: random.Random = field(default_factory=lambda: random.Random(2))

    def new_id(self) -> str:
        return "".join(self.ids.choice(ALPHABET) for _ in range(11))


def seed(id_seed: int = 2) -> Store:
    store = Store(ids=random.Random(id_seed))
    for n, handle in enumerate(HANDLES, 1):
        store.users[str(n)] = {"id": str(n), "name": handle}
    for n in range(1, 6):
        author = HANDLES[(n - 1) % 3]
        store.posts[str(n)] = {
            "id": str(n),
            "title": f"Post {n}",
            "author": author,
            "user_id": str(HANDLES.index(author) + 1),
            "views": 10 * n,
            "score": 4.0,
            "tags": ["news"] if n % 2 else ["howto"],
            "status": "draft" if n == 4 else "published",
        }
    for n in range(1, 5):
        store.comments[str(n)] = {"id": str(n), "post_id": str(1 + n % 2), "body": f"Comment {n}"}
    for n in range(1, 13):
        stock = 30 if n == 3 else 28 + n
        store.products[str(n)] = {"id": str(n), "sku": f"SKU-{n:04d}", "name": f"Lamp {n}", "stock": stock}
    return store


def _missing(kind: str) -> JSONResponse:
    return JSONResponse({"detail": f"{kind} does not exist"}, status_code=404)


def _envelope(items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": None, "total": len(items)})


def create_app(store: Store | None = None, *, patch_delay: float = 0.0) -> Starlette:
    """`patch_delay`: seconds a post update takes before it is applied (a slow write path)."""
    db = store or seed()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": "2.0.0"})

    async def list_posts(request: Request) -> Response:
        tag = request.query_params.get("tag")
        user = request.query_params.get("user_id")
        items = [
            p
            for p in reversed(db.posts.values())
            if (tag is not None and tag in p["tags"])
            or (tag is None and p["status"] == "published" and (user is None or p["user_id"] == user))
        ]
        return _envelope(items)

    async def create_post(request: Request) -> Response:
        body = await request.json()
        user = db.users.get(str(body.get("user_id", 1)))
        post = {
            "id": db.new_id(),
            "title": body.get("title", ""),
            "author": user["name"] if user else "",
            "user_id": user["id"] if user else None,
            "views": 0,
            "score": round(float(body.get("score", 0.0)), 1),
            "tags": list(body.get("tags", [])),
            "status": "published",
        }
        db.posts[post["id"]] = post
        return JSONResponse(post, status_code=201)

    async def get_post(request: Request) -> Response:
        post = db.posts.get(request.path_params["id"])
        return _missing("post") if post is None else JSONResponse(post)

    async def patch_post(request: Request) -> Response:
        post = db.posts.get(request.path_params["id"])
        if post is None:
            return _missing("post")
        changes = await request.json()
        if patch_delay:
            await asyncio.sleep(patch_delay)
        for name in ("title", "views", "tags"):
            if name in changes:
                post[name] = changes[name]
        if "score" in changes:
            post["score"] = round(float(changes["score"]), 1)
        return JSONResponse(post)

    async def post_page(request: Request) -> Response:
        post = db.posts.get(request.path_params["id"])
        if post is None:
            return HTMLResponse("<main>post does not exist</main>", status_code=404)
        lines = [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{post['title']} · Inkwell</title>",
            '<link rel="stylesheet" href="/static/inkwell.css">',
            "</head>",
            "<body>",
            '<nav><a href="/">Inkwell</a></nav>',
            f"<h1>{post['title']}</h1>",
            f"<p>by {post['author']}</p>",
            f"<p>{post['views']} views</p>",
            '<script src="/static/inkwell.js" defer></script>',
            "</body>",
            "</html>",
        ]
        return HTMLResponse("\n".join(lines) + "\n")

    async def list_comments(request: Request) -> Response:
        post = request.query_params.get("post_id")
        return _envelope([c for c in reversed(db.comments.values()) if post is None or c["post_id"] == post])

    async def create_comment(request: Request) -> Response:
        body = await request.json()
        comment = {"id": db.new_id(), "post_id": str(body["post_id"]), "body": body.get("body", "")}
        db.comments[comment["id"]] = comment
        return JSONResponse(comment, status_code=201)

    async def get_comment(request: Request) -> Response:
        comment = db.comments.get(request.path_params["id"])
        return _missing("comment") if comment is None else JSONResponse(comment)

    async def get_user(request: Request) -> Response:
        user = db.users.get(request.path_params["id"])
        return _missing("user") if user is None else JSONResponse(user)

    async def list_products(request: Request) -> Response:
        return _envelope(list(reversed(db.products.values())))

    async def product_by_sku(request: Request) -> Response:
        found = next((p for p in db.products.values() if p["sku"] == request.path_params["sku"]), None)
        return _missing("product") if found is None else JSONResponse(found)

    async def patch_product(request: Request) -> Response:
        product = db.products.get(request.path_params["id"])
        if product is None:
            return _missing("product")
        changes = await request.json()
        if "stock" in changes:
            product["stock"] = int(changes["stock"])
        return JSONResponse(product)

    async def stats(request: Request) -> Response:
        return JSONResponse({"posts": len(db.posts), "comments": len(db.comments)})

    routes = [
        Route("/health", health),
        Route("/posts", list_posts, methods=["GET"]),
        Route("/posts", create_post, methods=["POST"]),
        Route("/posts/{id}.html", post_page),
        Route("/posts/{id}.json", get_post),
        Route("/posts/{id}", get_post, methods=["GET"]),
        Route("/posts/{id}", patch_post, methods=["PATCH"]),
        Route("/comments", list_comments, methods=["GET"]),
        Route("/comments", create_comment, methods=["POST"]),
        Route("/comments/{id}", get_comment, methods=["GET"]),
        Route("/users/{id}", get_user),
        Route("/products", list_products),
        Route("/products/sku/{sku}", product_by_sku),
        Route("/products/{id}", patch_product, methods=["PATCH"]),
        Route("/stats", stats),
    ]
    app = Starlette(routes=routes)
    app.state.data = db
    return app
