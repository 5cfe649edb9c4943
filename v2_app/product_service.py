"""Product use cases: cached reads by id and sku, validated writes that invalidate the cache after commit."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from structlog.typing import FilteringBoundLogger

from v2_app.cache import CacheService
from v2_app.constants import MarginRates, ProductStatus
from v2_app.database import Database
from v2_app.exceptions import AlreadyExistsError, NotFoundError, ProductInUseError
from v2_app.models import Product, utcnow
from v2_app.repository import ProductRepository
from v2_app.schemas import ProductCreate, ProductPatch, ProductQuery
from v2_app.serializers import JSONObject, product_json


class ProductService:
    def __init__(self, db: Database, cache: CacheService, logger: FilteringBoundLogger) -> None:
        self._db = db
        self._cache = cache
        self._logger = logger.bind(logger="ProductService")
        # Bumped by every invalidation: a read that raced a write must not put what it read back in the cache.
        self._generation = 0

    async def get(self, product_id: int) -> JSONObject:
        key = f"id:{product_id}"
        cached = await self._cache.get(key)
        if cached is not None:
            return dict(cached)
        generation = self._generation
        async with self._db.read() as session:
            body = product_json(await ProductRepository(session).get_or_404(product_id))
        await self._fill(key, body, generation)
        return body

    async def get_by_sku(self, sku: str) -> JSONObject:
        key = f"sku:{sku}"
        cached = await self._cache.get(key)
        if cached is not None:
            return dict(cached)
        generation = self._generation
        async with self._db.read() as session:
            product = await ProductRepository(session).find_by_sku(sku)
            if product is None:
                raise NotFoundError("Product", sku)
            body = product_json(product)
        await self._fill(key, body, generation)
        return body

    async def list(self, query: ProductQuery) -> JSONObject:
        async with self._db.read() as session:
            products = ProductRepository(session)
            where = products.filters(query.status, query.q)
            rows = await products.list(*where, limit=query.limit, offset=query.offset)
            total = await products.count(*where)
            items = [product_json(row) for row in rows]
        return {"items": items, "total": total, "limit": query.limit, "offset": query.offset}

    async def create(self, data: ProductCreate) -> JSONObject:
        now = utcnow()
        try:
            async with self._db.write() as session:
                products = ProductRepository(session)
                if await products.find_by_sku(data.sku) is not None:
                    raise _duplicate(data.sku)
                product = await products.add(
                    Product(
                        sku=data.sku,
                        name=data.name,
                        description=data.description,
                        cost_price=data.cost_price,
                        margin_rate=data.margin_rate if data.margin_rate is not None else MarginRates.DEFAULT,
                        status=data.status.value,
                        stock=data.stock,
                        created_at=now,
                        updated_at=now,
                        v2_metadata={"written_by": "v2"},
                    )
                )
                body = product_json(product)
        except IntegrityError as exc:  # another process won the race for this sku
            raise _duplicate(data.sku) from exc
        await self.forget(product.id, product.sku)
        self._logger.info("Product created", product_id=product.id, sku=product.sku)
        return body

    async def update(self, product_id: int, patch: ProductPatch) -> JSONObject:
        changes = patch.changes()
        async with self._db.write() as session:
            product = await ProductRepository(session).get_or_404(product_id)
            for field, value in changes.items():
                setattr(product, field, value.value if isinstance(value, ProductStatus) else value)
            product.updated_at = utcnow()
            await session.flush()
            body = product_json(product)
        await self.forget(product.id, product.sku)
        self._logger.info("Product updated", product_id=product_id, fields=sorted(changes))
        return body

    async def delete(self, product_id: int) -> None:
        async with self._db.write() as session:
            products = ProductRepository(session)
            product = await products.get_or_404(product_id)
            if await products.is_ordered(product_id):
                raise ProductInUseError(
                    f"Product {product_id} is referenced by an order and cannot be deleted", {"id": str(product_id)}
                )
            sku = product.sku
            await products.delete(product)
        await self.forget(product_id, sku)
        self._logger.info("Product deleted", product_id=product_id, sku=sku)

    async def forget(self, product_id: int, sku: str) -> None:
        """Drop a product's cached bodies; called after every committed change to it (stock included)."""
        self._generation += 1
        await self._cache.delete(f"id:{product_id}", f"sku:{sku}")

    async def _fill(self, key: str, body: JSONObject, generation: int) -> None:
        if generation == self._generation:
            await self._cache.set(key, body)


def _duplicate(sku: str) -> AlreadyExistsError:
    return AlreadyExistsError(f"Product with sku {sku} already exists", {"resource": "Product", "sku": sku})
