"""A project: a folder with ``activelab.yaml`` and (by default) an SQLite store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from activelab.exceptions import InputError, NotFoundError
from activelab.loop.settings import DEFAULT_TASK, SETTINGS_FILE, Settings, load_settings, parse_settings, save_settings

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is imported when a project is opened, not with this module
    from activelab.store import Store
    from activelab.tasks import Task
    from activelab.tasks.masks import MaskFolder

DEFAULT_DB_FILE = "activelab.db"


@dataclass
class Project:
    """An opened project: its folder, settings and store."""

    root: Path
    settings: Settings
    store: Store

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mask_store(self) -> MaskFolder:
        """The project's content-addressed mask files (``masks/``): segmentation label events reference them."""
        from activelab.tasks.masks import MaskFolder

        return MaskFolder(self.root / "masks")

    def task(self) -> Task:
        """The project's task (``task:`` in activelab.yaml), keeping its mask files in :meth:`mask_store`."""
        from activelab.tasks import get_task

        return get_task(self.settings.task, masks=self.mask_store())

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"


def resolve_db_url(root: Path, db: str) -> str:
    """SQLite URLs with a relative path are relative to the project folder."""
    prefix = "sqlite:///"
    if db.startswith(prefix) and not db.startswith(prefix + "/"):
        return prefix + str((root / db[len(prefix) :]).resolve())
    return db


def init_project(
    root: str | Path,
    classes: Sequence[str] = (),
    *,
    db: str | None = None,
    name: str | None = None,
    task: str = DEFAULT_TASK,
) -> Project:
    """Create a project folder with its settings file and store (refuses an existing project)."""
    from activelab.store import open_store

    root = Path(root)
    settings_path = root / SETTINGS_FILE
    if settings_path.exists():
        raise InputError(f"{root} is already an activelab project ({settings_path} exists); use it as it is")
    settings = parse_settings(
        {"name": name or root.resolve().name, "db": db or f"sqlite:///{DEFAULT_DB_FILE}", "task": task},
        source="init_project",
    )
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(resolve_db_url(root, settings.db), create=True)
    try:
        store.add_classes(classes)
    except Exception:
        store.close()
        raise
    save_settings(settings, settings_path)
    return Project(root, settings, store)


def open_project(root: str | Path) -> Project:
    """Open an existing project folder."""
    from activelab.store import open_store

    root = Path(root)
    settings_path = root / SETTINGS_FILE
    if not settings_path.is_file():
        raise NotFoundError(
            f"{root} is not an activelab project (no {SETTINGS_FILE}); create it with `activelab init {root}`"
        )
    settings = load_settings(settings_path)
    store = open_store(resolve_db_url(root, settings.db), create=False)
    return Project(root, settings, store)
