"""Exceptions raised by activelab.

Every error a user can cause derives from :class:`ActivelabError`, so the CLI can
print its message (which names the file, row or value and the fix) instead of a
traceback. Subclasses also derive from the matching built-in where one fits, so
``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class ActivelabError(Exception):
    """Base class of every error activelab raises on purpose."""


class InputError(ActivelabError, ValueError):
    """Bad arguments or data: wrong shapes, NaN, unknown names, missing columns."""


class NotFoundError(ActivelabError, FileNotFoundError):
    """A path, project, image or class that does not exist."""


class StoreError(ActivelabError):
    """The project store cannot be opened or written as asked."""


class SchemaVersionError(StoreError):
    """The store was written by a newer activelab than this one."""


class OfflineError(ActivelabError, RuntimeError):
    """Pretrained weights or data must be downloaded but no network is reachable."""


class ForbiddenError(ActivelabError, PermissionError):
    """A change the project's settings do not allow (e.g. adding classes from the web app)."""


class UnsupportedMediaError(ActivelabError):
    """A stored file in a format that is not served (not a raster image format browsers display)."""


class ConfigError(InputError):
    """A simulation config with an unknown key or a bad value."""


class StrategyContractError(ActivelabError, RuntimeError):
    """A (usually user-registered) strategy returned positions that break the contract."""


class UnsupportedError(ActivelabError, NotImplementedError):
    """The model adapter cannot provide what was asked (e.g. MC dropout without dropout)."""


class NotFittedError(ActivelabError, RuntimeError):
    """A model method that needs a trained model was called before ``fit``."""


class MissingDependencyError(ActivelabError, ImportError):
    """An optional package (transformers, lightly, fastai) is needed but not installed."""


class ImageRejected(ActivelabError):
    """A file that cannot be used as an image; ``reason`` is a key of ``data.images.REJECTION_REASONS``.

    Import and serving record the reason per file instead of stopping, so this carries the
    machine-readable ``reason`` beside the human ``detail``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
