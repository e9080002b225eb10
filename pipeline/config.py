"""Where linkarchive keeps its data: one data home, overridable from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """The data home: the catalog, ``warcs/``, ``indexes/`` (CDXJ), ``jobs/`` and ``logs/``."""

    home: Path

    @property
    def warcs(self) -> Path:
        return self.home / "warcs"

    @property
    def indexes(self) -> Path:
        return self.home / "indexes"

    @property
    def jobs(self) -> Path:
        return self.home / "jobs"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def database_url(self) -> str:
        url = os.environ.get("LINKARCHIVE_DATABASE_URL")
        return url or f"sqlite:///{(self.home / 'catalog.sqlite').resolve()}"

    def ensure(self) -> Paths:
        """Create the folders of the data home if missing."""
        for path in (self.home, self.warcs, self.indexes, self.jobs, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        return self


def paths(home: str | Path | None = None) -> Paths:
    """Return the data home: ``home``, else ``$LINKARCHIVE_HOME``, else ``./data``."""
    chosen = home or os.environ.get("LINKARCHIVE_HOME") or "data"
    return Paths(Path(chosen).absolute())
