"""The backbone's input size, chosen from a project's images and its model, then recorded.

Why a rule and not a constant: a frozen ImageNet backbone embeds 28-px images at
224 px ten times slower than at 64 px for no gain, while 32 px loses accuracy
(benchmarks/bench_input_size.py; docs/benchmarks.md, "Input size"). The rule
(docs/models.md, "Input size"):

1. ``s`` = the median longer side of the pool's images;
2. upscale small images 2x (the task's ``input_upscale``; 1 for detection, whose boxes are in
   the image's own pixels): ``2 * s``, but at least :data:`MIN_INPUT_SIZE` (64 px);
3. never above the model's native size (the size its pretrained weights were trained
   at; :data:`MAX_INPUT_SIZE` for a network trained from scratch);
4. rounded up to a multiple of :data:`SIZE_STEP` (32), unless that passes the cap.

The choice is made once, when a project first needs it (its first embedding pass or
round), and written to ``model.image_size`` in ``activelab.yaml``, so every later pass
embeds at the same size (the embedding cache is keyed by it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from activelab.exceptions import ActivelabError
from activelab.loop.project import Project
from activelab.loop.settings import (
    SETTINGS_FILE,
    ModelSettings,
    load_settings,
    save_settings,
)

MIN_INPUT_SIZE = 64
MAX_INPUT_SIZE = 224
SIZE_STEP = 32
UPSCALE = 2


@dataclass(frozen=True)
class InputSize:
    """The input size a project's backbone runs at, and why."""

    pixels: int
    reason: str

    def describe(self) -> str:
        """One line for the CLI, e.g. ``input size 64 px (chosen from 28x28 images: ...)``."""
        return f"input size {self.pixels} px ({self.reason})"


def choose_input_size(image_side: float, native: int | None, *, upscale: int = UPSCALE) -> int:
    """The input size in pixels for images whose median longer side is ``image_side`` px.

    ``native``: the model's native input size (None for a network trained from
    scratch, capped at :data:`MAX_INPUT_SIZE`). See the module docstring for the rule.
    """
    if image_side <= 0:
        raise ValueError(f"image_side must be positive, got {image_side}")
    cap = native if native is not None else MAX_INPUT_SIZE
    wanted = max(upscale * image_side, MIN_INPUT_SIZE)
    rounded = SIZE_STEP * math.ceil(wanted / SIZE_STEP)
    return int(min(rounded, cap))


def native_input_size(model: ModelSettings) -> int | None:
    """The input size the model's pretrained weights expect (None: trained from scratch).

    Builds the architecture only (no weights, no download) to read its default
    preprocessing; a model whose architecture cannot be built offline counts as
    :data:`MAX_INPUT_SIZE`.
    """
    if not model.pretrained:
        return None
    from activelab.models.backbones import BackboneSpec, build_body
    from activelab.models.registry import parse_name

    source, arch = parse_name(model.name)
    if source == "fastai":
        return MAX_INPUT_SIZE
    try:
        body = build_body(BackboneSpec(source=source, name=arch, pretrained=True), load_weights=False)
    except (ActivelabError, OSError):
        return MAX_INPUT_SIZE
    return int(body.preprocess.size)


def median_image_size(sizes: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """Median ``(width, height)`` of ``(width, height)`` pairs (None when there are none)."""
    arr = np.array(list(sizes), dtype=np.float64).reshape(-1, 2)
    if len(arr) == 0:
        return None
    return round(float(np.median(arr[:, 0]))), round(float(np.median(arr[:, 1])))


def pool_image_sizes(project: Project) -> Iterable[tuple[int, int]]:
    """``(width, height)`` of every pool image, read from the store a page at a time."""
    for page in project.store.iter_images("pool"):
        for img in page:
            yield img.width, img.height


def pool_native_side(project: Project) -> int | None:
    """The longer side in pixels of the pool's median image size (None without pool images)."""
    median = median_image_size(pool_image_sizes(project))
    return None if median is None else max(median)


def resolve_input_size(project: Project) -> InputSize:
    """The project's input size: the one in its settings, else chosen now and recorded.

    The choice is written to ``model.image_size`` of the project's settings file (only
    that key changes on disk) and to ``project.settings``. A project without pool
    images keeps the model's default until it has some.
    """
    model = project.settings.model
    if model.image_size is not None:
        return InputSize(model.image_size, f"model.image_size in {SETTINGS_FILE}")
    median = median_image_size(pool_image_sizes(project))
    native = native_input_size(model)
    if median is None:
        default = native if native is not None else MIN_INPUT_SIZE
        return InputSize(default, "the model's default: no pool images to choose from yet")
    width, height = median
    upscale = project.task().input_upscale
    pixels = choose_input_size(max(width, height), native, upscale=upscale)
    cap = (
        f"{native} px, {model.name}'s native size"
        if native is not None
        else f"{MAX_INPUT_SIZE} px for a model trained from scratch"
    )
    reason = (
        f"chosen from {width}x{height} images: {upscale}x the median longer side, at least "
        f"{MIN_INPUT_SIZE} px, at most {cap}, rounded up to a multiple of {SIZE_STEP}; "
        f"recorded in {SETTINGS_FILE}"
    )
    record_input_size(project, pixels)
    return InputSize(pixels, reason)


def record_input_size(project: Project, pixels: int) -> None:
    """Set ``model.image_size`` in the settings file and in memory, leaving every other key as it is on disk."""
    path = project.root / SETTINGS_FILE
    on_disk = load_settings(path)
    on_disk.model.image_size = pixels
    save_settings(on_disk, path)
    project.settings.model.image_size = pixels
