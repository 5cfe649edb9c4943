"""Inkwell 1.x: users, posts, comments and products in memory; integer ids, page-numbered lists, oldest first."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

NAMES = ["ann", "bob", "cy", "dee", "eli", "fay", "gus", "hal"]


@dataclass
class Data:
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)

    def next_id(self, table: dict[int, dict[str, Any]]) -> int:
        return max(table, default=0) + 1


def seed() -> Data:
    data = Data()
    for n, name in enumerate(NAMES, 1):
        data.users[n] = {"id": n, "name": name}
    for n in range(1, 6):
        author = NAMES[(n - 1) % 3]
        data.posts[n] = {
            "id": n,
            "title": f"Post {n}",
            "author": author,
            "user_id": NAMES.index(author) + 1,
            "views": 10 * n,
            "score": 4.0,
            "tags": ["news"] if n % 2 else ["howto"],
            "status": "draft" if n == 4 else "published",
        }
    for n in range(1, 5):
        data.comments[n] = {"id": n, "post_id": 1 + n % 2, "body": f"Comment {n}"}
    for n in range(1, 13):
        data.products[n] = {"id": n, "sku": f"SKU-{n:04d}", "name": f"Lamp {n}", "stock": 28 + n}
    return data


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "not found"}, status_code=404)


def _page(items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"items": items, "page": 1, "total": len(items)})


def create_app(data: Data | None = None) -> Starlette:
    db = data or seed()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": "1.9.0"})

    async def list_posts(request: Request) -> Response:
        tag = request.query_params.get("tag")
        user = _int(request.query_params.get("user_id", ""))
        published = [p for _, p in sorted(db.posts.items()) if p["status"] == "published"]
        items = [p for p in published if (tag is None or tag in p["tags"]) and (user is None or p["user_id"] == user)]
        return _page(items)

    async def create_post(request: Request) -> Response:
        body = await request.json()
        post_id = db.next_id(db.posts)
        user = db.users.get(int(body.get("user_id", 1)))
        post = {
            "id": post_id,
            "title": body.get("title", ""),
            "author": user["name"] if user else "",
            "user_id": user["id"] if user else None,
            "views": 0,
            "score": float(body.get("score", 0.0)),
            "tags": list(body.get("tags", [])),
            "status": "published",
        }
        db.posts[post_id] = post
        return JSONResponse(post, status_code=201)

    def _post(request: Request) -> dict[str, Any] | None:
        post_id = _int(request.path_params["id"])
        return None if post_id is None else db.posts.get(post_id)

    async def get_post(request: Request) -> Response:
        post = _post(request)
        return _not_found() if post is None else JSONResponse(post)

    async def patch_post(request: Request) -> Response:
        post = _post(request)
        if post is None:
            return _not_found()
        changes = await request.json()
        for name in ("title", "views", "score", "tags"):
            if name in changes:
                post[name] = changes[name]
        return JSONResponse(post)

    async def post_page(request: Request) -> Response:
        post = _post(request)
        if post is None:
            return HTMLResponse("<p>not found</p>", status_code=404)
        lines = [
            "<html>",
            f"<head><title>{post['title']}</title></head>",
            "<body>",
            f"<h1>{post['title']}</h1>",
            f"<p>by {post['author']}</p>",
            f"<p>{post['views']} views</p>",
            f"<!-- rendered in {random.uniform(1, 9):.3f} ms -->",
            "</body>",
            "</html>",
        ]
        return HTMLResponse("\n".join(lines) + "\n")

    async def list_comments(request: Request) -> Response:
        post = _int(request.query_params.get("post_id", ""))
        return _page([c for _, c in sorted(db.comments.items()) if post is None or c["post_id"] == post])

    async def create_comment(request: Request) -> Response:
        body = await request.json()
        comment_id = db.next_id(db.comments)
        comment = {"id": comment_id, "post_id": int(body["post_id"]), "body": body.get("body", "")}
        db.comments[comment_id] = comment
        return JSONResponse(comment, status_code=201)

    async def get_comment(request: Request) -> Response:
        comment_id = _int(request.path_params["id"])
        comment = None if comment_id is None else db.comments.get(comment_id)
        return _not_found() if comment is None else JSONResponse(comment)

    async def get_user(request: Request) -> Response:
        user_id = _int(request.path_params["id"])
        user = None if user_id is None else db.users.get(user_id)
        return _not_found() if user is None else JSONResponse(user)

    async def list_products(request: Request) -> Response:
        return _page([p for _, p in sorted(db.products.items())])

    async def product_by_sku(request: Request) -> Response:
        found = next((p for p in db.products.values() if p["sku"] == request.path_params["sku"]), None)
        return _not_found() if found is None else JSONResponse(found)

    async def patch_product(request: Request) -> Response:
        product_id = _int(request.path_params["id"])
        product = None if product_id is None else db.products.get(product_id)
        if product is None:
            return _not_found()
        changes = await request.json()
        if "stock" in changes:
            product["stock"] = int(changes["stock"])
        return JSONResponse(product)

    async def stats(request: Request) -> Response:
        took = round(random.uniform(0.5, 9.5), 3)
        return JSONResponse({"posts": len(db.posts), "comments": len(db.comments), "took_ms": took})

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
