"""The background trainer: retrains every N new labels and re-ranks the queue, off the request path.

It runs :meth:`ActiveSession.run_round` in one daemon thread. Its status (idle /
training round R / paused, last metrics, last error) is persisted in the store's
``service_state`` table under ``trainer`` after every change, so the page shows
it and a restarted server finds it; a round interrupted by a crash is marked
failed by :meth:`ActiveSession.recover` and reported as the last error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from activelab.loop.project import Project
from activelab.loop.session import ActiveSession

STATE_KEY = "trainer"
log = logging.getLogger(__name__)

SessionFactory = Callable[[Project], ActiveSession]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def default_state() -> dict[str, Any]:
    return {
        "state": "idle",
        "round": None,
        "paused": False,
        "requested": False,
        "last_round": None,
        "last_metrics": None,
        "last_error": None,
        "error_at_labels": None,
        "updated_at": _now(),
    }


class BackgroundTrainer:
    """Retrain every ``retrain_every`` new pool labels (or on request) in a background thread."""

    def __init__(
        self,
        project: Project,
        *,
        retrain_every: int,
        poll_seconds: float = 2.0,
        session_factory: SessionFactory = ActiveSession,
    ) -> None:
        self.project = project
        self.retrain_every = retrain_every
        self.poll_seconds = poll_seconds
        self.session_factory = session_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards read-modify-write of the persisted state
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- state
    def status(self) -> dict[str, Any]:
        state = default_state()
        state.update(self.project.store.service_state(STATE_KEY) or {})
        state["running"] = self._thread is not None and self._thread.is_alive()
        state["retrain_every"] = self.retrain_every
        return state

    def _update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            state = default_state()
            state.update(self.project.store.service_state(STATE_KEY) or {})
            state.update(changes, updated_at=_now())
            self.project.store.set_service_state(STATE_KEY, state)
            return state

    def recover(self) -> None:
        """After a restart: a round left 'training' by a dead process becomes a reported error."""
        state = self.project.store.service_state(STATE_KEY)
        failed = self.session_factory(self.project).recover()
        if state is not None and state.get("state") == "training":
            self._update(
                state="idle", round=None, last_error=f"round {state.get('round')} was interrupted by a restart"
            )
        elif failed:
            self._update(last_error=f"round(s) {failed} were interrupted by a restart")

    # ------------------------------------------------------------ control
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="activelab-trainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for it (a round in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """New labels arrived: look at the count now instead of at the next poll."""
        self._wake.set()

    def request_round(self) -> dict[str, Any]:
        state = self._update(requested=True)
        self._wake.set()
        return state

    def pause(self) -> dict[str, Any]:
        return self._update(paused=True)

    def resume(self) -> dict[str, Any]:
        state = self._update(paused=False)
        self._wake.set()
        return state

    # --------------------------------------------------------------- work
    def labels_since_last_round(self) -> tuple[int, int | None]:
        """(labeled pool images now, any task's annotations counted; labeled pool images when the latest
        finished round started)."""
        n = len(self.project.store.current_annotations("pool"))
        done = [r for r in self.project.store.rounds() if r.status == "done"]
        return n, (done[-1].n_labeled if done else None)

    def due(self) -> bool:
        state = self.status()
        if state["paused"]:
            return False
        if state["requested"]:
            return True
        n, last = self.labels_since_last_round()
        if state.get("error_at_labels") is not None and n == state["error_at_labels"]:
            return False  # the last attempt failed on exactly these labels: wait for more
        if last is None:
            return n >= 2
        return max(n - last, self._answered_regions()) >= self.retrain_every

    def _answered_regions(self) -> int:
        """Images the latest region round asked regions of that got a label since it started: in region mode an
        answer may only add pixels to an image labeled in part, which the count of labeled images misses."""
        done = [r for r in self.project.store.rounds() if r.status == "done"]
        asked = self.project.store.round_asked(done[-1].number) if done else {}
        if not asked:
            return 0
        return len(asked.keys() & self.project.store.labeled_image_ids(since=done[-1].started_at))

    def run_once(self) -> dict[str, Any]:
        """Run one round now (in the caller's thread) and record the outcome."""
        session = self.session_factory(self.project)
        number = (max((r.number for r in self.project.store.rounds()), default=0)) + 1
        self._update(state="training", round=number, requested=False)
        n, _ = self.labels_since_last_round()
        try:
            result = session.run_round()
        except Exception as exc:
            return self._update(state="idle", round=None, last_error=f"{type(exc).__name__}: {exc}", error_at_labels=n)
        ev = result.metrics.get("eval", {})
        metrics = {
            "round": result.number,
            "strategy": result.strategy,
            "n_labeled": result.metrics.get("n_labeled"),
            "accuracy": ev.get("accuracy"),
            "macro_f1": ev.get("macro_f1"),
            "n_eval": ev.get("n"),
            "agreement": result.metrics.get("agreement"),
            "seconds": result.seconds,
            "selected": len(result.selected),
            "semi_supervised": result.metrics.get("semi_supervised", "none"),
            "n_unlabeled": result.metrics.get("n_unlabeled", 0),
            "representation": (result.metrics.get("representation") or {}).get("label"),
        }
        for key in ("map", "miou"):  # detection, segmentation: no accuracy; the app's trainer line shows these
            if key in ev:
                metrics[key] = ev[key]
        if "asked_pixels" in result.metrics:  # a region round: the pixels it asks for, over its selected images
            metrics["asked_pixels"] = result.metrics["asked_pixels"]
        return self._update(
            state="idle",
            round=None,
            last_round=result.number,
            last_metrics=metrics,
            last_error=None,
            error_at_labels=None,
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self.due():
                    self.run_once()
            except Exception as exc:
                try:
                    self._update(state="idle", round=None, last_error=f"{type(exc).__name__}: {exc}")
                except Exception:  # the store itself is failing: log and retry later
                    log.exception("activelab trainer: cannot record its error")
                time.sleep(self.poll_seconds)
