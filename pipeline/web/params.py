"""Path parameters the routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# Catalog ids (links, captures): 1 to 2**62. Anything else is "no such page" (404), never
# an integer the database cannot hold (an OverflowError, a 500).
MAX_ID = 2**62
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
