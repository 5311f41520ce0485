"""Settings of one running labeling app (what ``activelab serve`` passes to :func:`create_app`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from activelab.exceptions import InputError
from activelab.server.security import check_token, normalise_host

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class ServerSettings:
    """How to serve one project.

    - ``project``: the project folder (holds ``activelab.yaml``).
    - ``token``: when set, every API call and page needs it (header ``Authorization:
      Bearer <token>``, or the cookie the page sets from ``?token=``). ``activelab
      serve`` generates one whenever it binds off loopback. At least 16 printable
      ASCII characters: an empty or short token is refused, never taken as "no token".
    - ``allowed_hosts``: host names the app answers to besides 127.0.0.1, localhost and
      [::1] (``Host`` header, any port); requests naming another host get 400, which
      stops DNS rebinding. ``activelab serve`` adds the ``--host`` it binds.
    - ``max_body_bytes``: larger request bodies get 413 without being read.
    - ``lease_seconds``: how long images shown to one labeler are kept from others.
    - ``trainer``: run the background trainer (off in tests that drive rounds by hand).
    - ``retrain_every``: new labels between rounds (default: the project's
      ``active_learner.retrain_every``).
    - ``trainer_poll_seconds``: how often the idle trainer looks at the label count.
    - ``similar_index``: bring the similar-images index up to date in a background thread
      when the app starts (off in tests that do not use it; a request still starts it).
    - ``mix_review``: in label mode, interleave the likely label errors of the latest
      ``activelab errors`` ranking with new images by expected value
      (:func:`activelab.label_errors.mix_queues`; ``activelab serve --mix-review``). Off by default.
    """

    project: Path
    token: str | None = None
    lease_seconds: float = 600.0
    trainer: bool = True
    retrain_every: int | None = None
    trainer_poll_seconds: float = 2.0
    max_items: int = 50
    mix_review: bool = False
    similar_index: bool = True
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        check_token(self.token)
        if self.max_body_bytes < 1:
            raise InputError(f"max_body_bytes must be at least 1, got {self.max_body_bytes} (--max-body-mb)")
        object.__setattr__(self, "allowed_hosts", tuple(normalise_host(h) for h in self.allowed_hosts))
