"""Alembic environment: migrations run on the connection the catalog hands over."""

from alembic import context
from sqlalchemy import create_engine

from pipeline.catalog.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` command line: -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/catalog.sqlite")
    with create_engine(url).begin() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
