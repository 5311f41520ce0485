"""Settings of one running labeling app (what ``activelab serve`` passes to :func:`create_app`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerSettings:
    """How to serve one project.

    - ``project``: the project folder (holds ``activelab.yaml``).
    - ``token``: when set, every API call and page needs it (header ``Authorization:
      Bearer <token>``, or the cookie the page sets from ``?token=``). ``activelab
      serve`` generates one whenever it binds off loopback.
    - ``lease_seconds``: how long images shown to one labeler are kept from others.
    - ``trainer``: run the background trainer (off in tests that drive rounds by hand).
    - ``retrain_every``: new labels between rounds (default: the project's
      ``active_learner.retrain_every``).
    - ``trainer_poll_seconds``: how often the idle trainer looks at the label count.
    - ``mix_review``: in label mode, interleave the likely label errors of the latest
      ``activelab errors`` ranking with new images by expected value
      (:func:`activelab.errors.mix_queues`; ``activelab serve --mix-review``). Off by default.
    """

    project: Path
    token: str | None = None
    lease_seconds: float = 600.0
    trainer: bool = True
    retrain_every: int | None = None
    trainer_poll_seconds: float = 2.0
    max_items: int = 50
    mix_review: bool = False
