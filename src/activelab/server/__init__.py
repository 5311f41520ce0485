"""The labeling web app: REST API, labeling page and dashboard over the loop (queue rules, background trainer).

>>> from activelab.server import ServerSettings, create_app
>>> app = create_app(ServerSettings(project=Path("my-project")))   # doctest: +SKIP

``label_dataframe(df, classes)`` opens the app on the rows of a DataFrame and returns
them labeled (``ActiveLearner.label(df, labeler=label_dataframe)``). See docs/webapp.md.
"""

from activelab.server.app import create_app
from activelab.server.dataframe import label_dataframe
from activelab.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "label_dataframe"]
