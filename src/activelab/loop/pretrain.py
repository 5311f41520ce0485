"""Self-supervised pretraining on a project's own pool: ``activelab pretrain PROJECT``.

The project's backbone (``model.name`` at the project's input size, from its
pretrained weights where it has them) learns from the unlabeled POOL images with
SimCLR, SimSiam or DINO (:mod:`activelab.models.integrations.lightly`); eval images are
never read, so the held-out accuracy stays an honest measure. The result is
``PROJECT/models/ssl/<model>-<method>.pt`` (a state dict that
``create_model(name, backbone_weights=...)`` loads), the resumable checkpoint beside it
(``.ckpt``) and a small JSON record (method, epochs, images, seconds, loss per epoch).
A finished file is used only when asked: :func:`use_ssl_backbone` (``--use``) sets
``model.backbone_weights`` in ``activelab.yaml``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from activelab._io import atomic_write_text
from activelab.exceptions import InputError
from activelab.loop.input_size import resolve_input_size
from activelab.loop.project import Project
from activelab.loop.settings import SETTINGS_FILE, ModelSettings, load_settings, save_settings
from activelab.models.integrations.lightly import EpochDone, checkpoint_path, checkpoint_summary, pretrain_backbone

SSL_DIR = Path("models") / "ssl"
#: fewer pool images than this teach a backbone nothing worth its time
MIN_POOL_IMAGES = 16


def ssl_file(project: Project, method: str, model: str | None = None) -> Path:
    """``PROJECT/models/ssl/<model>-<method>.pt`` (``/`` and ``:`` in the model's name become ``_``)."""
    name = re.sub(r"[/:\\]", "_", model or project.settings.model.name)
    return project.root / SSL_DIR / f"{name}-{method}.pt"


def pool_paths(project: Project) -> list[str]:
    """The pool images' paths in id order (never an eval image; images stored without a file are skipped)."""
    return [img.path for page in project.store.iter_images("pool") for img in page if img.path]


def pretrain_project(
    project: Project,
    *,
    method: str = "simclr",
    epochs: int = 10,
    batch_size: int = 64,
    lr: float | None = None,
    device: str | None = None,
    seed: int | None = None,
    resume: bool = True,
    progress: bool = False,
    on_epoch: Callable[[EpochDone], None] | None = None,
) -> Path:
    """Pretrain the project's backbone on its pool images; returns the weights file.

    ``seed`` None: the project's ``train.seed``; ``device`` None: ``model.device``, else
    automatic. With ``resume`` (the default) a checkpoint of the same settings is
    continued up to ``epochs``; a Ctrl-C keeps the last finished epoch there. Writes
    the ``.json`` record beside the weights only when training finished.
    """
    settings = project.settings
    paths = pool_paths(project)
    if len(paths) < MIN_POOL_IMAGES:
        raise InputError(
            f"self-supervised pretraining needs at least {MIN_POOL_IMAGES} pool images; {project.root} has "
            f"{len(paths)}: import more with `activelab import {project.root} FOLDER`"
        )
    size = resolve_input_size(project).pixels
    out = ssl_file(project, method)
    started = time.perf_counter()
    pretrain_backbone(
        settings.model.name,
        paths,
        out,
        method=method,
        pretrained=settings.model.pretrained,
        image_size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device if device is not None else settings.model.device,
        seed=settings.train.seed if seed is None else seed,
        progress=progress,
        resume=resume,
        on_epoch=on_epoch,
    )
    summary = checkpoint_summary(out)
    record = {
        "model": settings.model.name,
        "method": method,
        "weights": out.name,
        "checkpoint": checkpoint_path(out).name,
        "image_size": size,
        "epochs": int(summary["epoch"]),
        "images": len(paths),
        "seconds": round(float(summary["seconds"]), 2),
        "seconds_this_run": round(time.perf_counter() - started, 2),
        "losses": [round(float(v), 5) for v in summary["losses"]],
        "batch_size": summary["config"]["batch_size"],
        "lr": summary["config"]["lr"],
        "seed": summary["config"]["seed"],
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return out


def ssl_records(project: Project, model: str | None = None) -> list[dict[str, Any]]:
    """Finished pretraining runs of ``model`` (None: the project's ``model.name``), newest first.

    Each is the run's JSON record plus ``"path"``: its weights file, which exists.
    """
    name = model or project.settings.model.name
    found = []
    for f in (project.root / SSL_DIR).glob("*.json"):
        try:
            record = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        weights = f.parent / str(record.get("weights", ""))
        if record.get("model") == name and weights.is_file():
            found.append({**record, "path": weights})
    return sorted(found, key=lambda r: str(r.get("finished_at", "")), reverse=True)


def ssl_backbone(project: Project, model: str | None = None) -> Path | None:
    """The weights file the newest finished pretraining of ``model`` (default: the project's) wrote, or None."""
    records = ssl_records(project, model)
    return Path(records[0]["path"]) if records else None


def use_ssl_backbone(project: Project, weights: Path) -> str:
    """Set ``model.backbone_weights`` to ``weights`` (relative to the project) in ``activelab.yaml``; returns it.

    Only that key changes on disk; ``project.settings`` follows.
    """
    if "backbone_weights" not in ModelSettings.model_fields:
        raise InputError("this activelab has no model.backbone_weights setting yet; pass the file to create_model")
    value = weights.resolve().relative_to(project.root.resolve()).as_posix()
    path = project.root / SETTINGS_FILE
    on_disk = load_settings(path)
    on_disk.model = on_disk.model.model_copy(update={"backbone_weights": value})
    save_settings(on_disk, path)
    project.settings.model = project.settings.model.model_copy(update={"backbone_weights": value})
    return value


def candidate_weights(project: Project) -> str | None:
    """The backbone weights a candidate may carry: ``model.backbone_weights``, else the project's newest
    finished ``activelab pretrain`` backbone (:func:`ssl_backbone`), else None."""
    from activelab.loop.round import backbone_weights_file

    found = backbone_weights_file(project.settings.model.backbone_weights, project.root) or ssl_backbone(project)
    return None if found is None else str(found)
