"""The labeling web app: REST API, labeling page, dashboard and background trainer.

>>> from activelab.server import ServerSettings, create_app
>>> app = create_app(ServerSettings(project=Path("my-project")))   # doctest: +SKIP

See docs/webapp.md.
"""

from activelab.server.app import create_app
from activelab.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
