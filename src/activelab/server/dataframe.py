"""Label the rows of a DataFrame in the labeling app (what ``ActiveLearner.label`` opens).

``label_dataframe(df, classes)`` builds a temporary project from the DataFrame's
image files, serves the labeling app on 127.0.0.1 (uvicorn in a thread), prints the
URL, and blocks until every row has a label, ``POST /api/done`` is called (the
page's API, e.g. from a notebook cell or curl) or the user presses Ctrl-C. It
returns a copy of the DataFrame with the labels in ``label_col`` as the export
writes them (the task's table cell: a class name, or for a multi-label ``task``
the chosen classes joined by ``|``, ``""`` for none of them; missing, NA, where
nothing was given: skipped or "not sure"), and writes it as parquet when
``output_filename`` is given.

It lives in the server layer because it serves the app; ``ActiveLearner`` (loop
layer, below) takes it as its ``labeler`` so imports keep pointing down.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activelab.exceptions import InputError, NotFoundError
from activelab.loop.ingest import import_images
from activelab.loop.project import init_project, open_project
from activelab.loop.settings import load_settings, save_settings
from activelab.server.app import create_app
from activelab.server.settings import ServerSettings
from activelab.tasks import Task, get_task

DONE_PATH = "/api/done"


def label_dataframe(
    df: pd.DataFrame,
    classes: Sequence[str],
    *,
    filepath_col: str = "filepath",
    label_col: str = "label",
    output_filename: str | Path | None = None,
    port: int = 0,
    project_dir: str | Path | None = None,
    timeout: float | None = None,
    poll_seconds: float = 0.5,
    on_ready: Callable[[str], Any] | None = None,
    lease_seconds: float = 600.0,
    task: str = "classification",
) -> pd.DataFrame:
    """Open the labeling app on the rows of ``df``; return ``df`` with a ``label_col`` column.

    - ``classes``: the class names, in shortcut order (labels already in ``label_col``
      are kept and their classes added).
    - ``port``: 0 picks a free port. The app binds to 127.0.0.1 only.
    - ``project_dir``: where the temporary project goes (kept when given; otherwise a
      temporary folder, removed at the end).
    - ``timeout``: stop after this many seconds (None: wait for the labels, ``/api/done``
      or Ctrl-C).
    - ``on_ready(url)``: called once the server answers (default: print the URL).
    - ``task``: what a label is (``"multilabel"``: a set of classes per row); labels already
      in ``label_col`` are read like an import reads them (``"a|b"`` or a list of names).

    Rows whose file is the same image (same content) share one label.
    """
    if filepath_col not in df.columns:
        raise InputError(
            f"the DataFrame has no column {filepath_col!r} (columns: {list(map(str, df.columns))}); pass filepath_col="
        )
    kind = get_task(task)
    names = [str(c) for c in classes]
    if not names:
        raise InputError("give the class names: label_dataframe(df, classes=['cat', 'dog'])")
    paths = [str(Path(p).resolve()) for p in df[filepath_col].astype(str)]
    missing = [(i, p) for i, p in enumerate(paths) if not Path(p).is_file()]
    if missing:
        row, path = missing[0]
        raise NotFoundError(f"{len(missing)} file(s) in column {filepath_col!r} do not exist, e.g. row {row}: {path}")
    if df.empty:
        out = df.copy()
        out[label_col] = pd.Series(dtype=object)
        return _write(out, output_filename)

    tmp = None if project_dir is not None else Path(tempfile.mkdtemp(prefix="activelab-label-"))
    root = Path(project_dir) if project_dir is not None else tmp / "project"  # type: ignore[operator]
    try:
        ids = _build_project(root, paths, df[label_col] if label_col in df.columns else None, names, kind)
        labels = _serve_until_done(
            root,
            set(ids),
            kind,
            port=port,
            timeout=timeout,
            poll_seconds=poll_seconds,
            on_ready=on_ready,
            lease_seconds=lease_seconds,
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out = df.copy()
    out[label_col] = [labels.get(i) for i in ids]
    return _write(out, output_filename)


def _write(out: pd.DataFrame, output_filename: str | Path | None) -> pd.DataFrame:
    if output_filename is not None:
        path = Path(output_filename)
        path = path if path.suffix else path.with_suffix(".parquet")
        out.to_parquet(path)
    return out


def _build_project(root: Path, paths: list[str], given: pd.Series | None, classes: list[str], task: Task) -> list[int]:
    """A project with one pool image per distinct file; returns the image id of each row."""
    frame = pd.DataFrame({"filepath": paths})
    if given is not None:
        frame["label"] = [_given_cell(v, task) for v in given]
    with init_project(root, classes, name="dataframe", task=task.name) as project:
        import_images(
            project.store,
            frame,
            label_col="label" if given is not None else None,
            task=task,
            add_classes=True,
            author="dataframe",
        )
        by_path = {str(Path(img.path).resolve()): img.id for img in project.store.images()}
        ids = []
        for row, path in enumerate(paths):
            iid = by_path.get(path)
            if iid is None:  # the same content under another path: imported once
                image = project.store.find_image(hashlib.sha256(Path(path).read_bytes()).hexdigest())
                if image is None:
                    raise InputError(f"row {row}: {path} could not be imported as an image (is it one?)")
                iid = image.id
            ids.append(iid)
    settings_path = root / "activelab.yaml"
    settings = load_settings(settings_path)
    settings.active_learner.eval_fraction = 0.0  # every label comes back to the caller; no hold-out
    save_settings(settings, settings_path)
    return ids


def _given_cell(value: Any, task: Task) -> str | None:
    """A label already in the DataFrame as the import's table cell (a list of names is a set); None when blank."""
    if isinstance(value, (list, tuple, set)):
        return task.format(sorted(map(str, value)))
    if value is None or pd.isna(value) or not str(value).strip():
        return None
    return str(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_until_done(
    root: Path,
    ids: set[int],
    task: Task,
    *,
    port: int,
    timeout: float | None,
    poll_seconds: float,
    on_ready: Callable[[str], Any] | None,
    lease_seconds: float,
) -> dict[int, str]:
    import uvicorn

    done = threading.Event()
    app = create_app(ServerSettings(project=root, trainer=False, lease_seconds=lease_seconds))

    def finish() -> dict[str, bool]:
        """Stop the labeling session: ``label_dataframe`` returns what is labeled so far."""
        done.set()
        return {"ok": True}

    app.add_api_route(
        DONE_PATH, finish, methods=["POST"], tags=["labeling"], summary="Finish labeling (label_dataframe returns)"
    )
    port = port or _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="activelab-label-dataframe", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise InputError(f"the labeling app could not start on 127.0.0.1:{port} (port in use?)")
            time.sleep(0.05)
        (on_ready or _announce)(url)
        with open_project(root) as project:
            while not done.is_set():
                labeled = project.store.current_annotations()
                if ids <= labeled.keys():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                done.wait(poll_seconds)
            current = project.store.current_annotations()
    except KeyboardInterrupt:
        with open_project(root) as project:
            current = project.store.current_annotations()
    finally:
        server.should_exit = True
        thread.join(30)
    return {iid: task.format(cur.payload) for iid, cur in current.items() if iid in ids}


def _announce(url: str) -> None:
    print(f"label the images at {url}  (keys 1-9/0 pick a class; Ctrl-C or POST {DONE_PATH} to finish)", flush=True)
