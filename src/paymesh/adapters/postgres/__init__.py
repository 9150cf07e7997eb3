"""PostgreSQL: the shared store (asyncpg pool, Alembic migrations, many processes at once)."""

from paymesh.adapters.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
