"""Embed a whole project into its embedding cache: ``activelab embed PROJECT``.

The pass reads the store a page at a time and streams the images through the
project's frozen backbone (:func:`activelab.models.stream.stream_embed`, or Ray
Data with ``backend="ray"``), writing the same cache the rounds, the label-error
report and "similar images" read (``PROJECT/cache/embeddings``). It is resumable:
an interrupted pass keeps every finished shard and the next one computes only what
is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from activelab.exceptions import InputError
from activelab.loop.input_size import resolve_input_size
from activelab.loop.project import Project
from activelab.loop.round import build_model, model_settings
from activelab.models import FastAdapter
from activelab.models.stream import ShardCallback, StreamReport, stream_embed

BACKENDS = ("local", "ray")
#: the backbone used for embeddings when the project's own model has no pretrained backbone
FALLBACK_EMBEDDING_MODEL = "efficientnet_lite0"


def embedding_model(project: Project, *, device: str | None = None) -> FastAdapter:
    """The frozen backbone whose embeddings a project caches (built, cache in ``PROJECT/cache/embeddings``).

    The project's model when it has a pretrained backbone (its fast path shares
    this cache with the rounds); otherwise (``small_cnn``, ``pretrained: false``)
    the packaged ImageNet EfficientNet-Lite0 at the project's image size: a network
    trained from scratch has no fixed embedding to cache. ``model.backbone_weights`` (from
    ``activelab pretrain``) is loaded over the project's backbone, as the rounds load it. The image size is chosen
    and recorded on first use when the settings leave it unset (:mod:`.input_size`).
    """
    m = project.settings.model
    frozen = model_settings(
        m.name if m.pretrained else FALLBACK_EMBEDDING_MODEL,
        mode="frozen",
        pretrained=True,
        device=device if device is not None else m.device,
    )
    if m.pretrained:  # the project's own backbone, with the self-supervised weights its rounds load
        frozen = frozen.model_copy(update={"backbone_weights": m.backbone_weights})
    adapter = build_model(
        frozen,
        None,
        task=project.task(),
        cache_dir=project.cache_dir / "embeddings",
        image_size=resolve_input_size(project).pixels,
        root=project.root,
    )
    assert isinstance(adapter, FastAdapter)
    return adapter


def project_items(
    project: Project, splits: Sequence[str] = ("pool", "eval"), *, page_size: int = 10_000
) -> Iterator[tuple[str, str]]:
    """``(sha256, path)`` of the images of ``splits``, in id order, read from the store a page at a time."""
    wanted = set(splits)
    for page in project.store.iter_images(None if len(wanted) > 1 else next(iter(wanted)), batch_size=page_size):
        for img in page:
            if img.split in wanted:
                yield img.sha256, img.path


def embed_project(
    project: Project,
    *,
    splits: Sequence[str] = ("pool", "eval"),
    backend: str = "local",
    batch_size: int = 64,
    workers: int = 0,
    shard_size: int = 1024,
    device: str | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
    ray_init: dict[str, Any] | None = None,
    progress: bool = False,
    on_shard: ShardCallback | None = None,
    model: FastAdapter | None = None,
) -> StreamReport:
    """Embed every image of ``splits`` not cached yet; returns what the pass did.

    ``backend="local"``: a torch DataLoader with ``workers`` processes (AMP and
    channels_last on CUDA). ``backend="ray"``: Ray Data over the cluster at
    ``address`` (None: a local Ray instance), ``workers`` actors (at least 1) with
    ``gpus_per_worker`` GPUs each. ``on_shard(n)`` runs after each written shard.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    for split in splits:
        if split not in ("pool", "eval"):
            raise InputError(f"split must be pool or eval, got {split!r}")
    adapter = model if model is not None else embedding_model(project, device=device)
    total = sum(project.store.n_images(s) for s in set(splits))
    items = project_items(project, splits)
    if backend == "ray":
        from activelab.models.integrations.ray import ray_embed

        return ray_embed(
            adapter,
            items,
            address=address,
            workers=max(1, workers),
            batch_size=batch_size,
            shard_size=shard_size,
            gpus_per_worker=gpus_per_worker,
            init_kwargs=ray_init,
            on_shard=on_shard,
        )
    return stream_embed(
        adapter,
        items,
        batch_size=batch_size,
        num_workers=workers,
        shard_size=shard_size,
        progress=progress,
        total=total,
        on_shard=on_shard,
    )
