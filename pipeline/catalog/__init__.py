"""The catalog: seeds, crawl runs and an index of what the WARC files hold."""

from pipeline.catalog.db import CatalogError, engine_for, session_scope
from pipeline.catalog.models import Base

__all__ = ["Base", "CatalogError", "engine_for", "session_scope"]
