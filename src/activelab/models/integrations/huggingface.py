"""Hugging Face image models as backbones: ``hf/<hub id>`` or ``hf/<save_pretrained folder>``.

Needs the ``hf`` extra (``pip install 'activelab[hf]'``, i.e. transformers); it is
imported only when an ``hf/`` model is built, and :class:`MissingDependencyError` says
how to install it otherwise. Downloads never hang offline: the network is probed once
(:func:`activelab.models.hub.host_reachable`) and the local cache used when it is down.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError, MissingDependencyError, NotFoundError, OfflineError
from activelab.models import hub
from activelab.models.backbones import BackboneSpec, Body, probe_dim
from activelab.models.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess


def import_transformers(model: str) -> Any:
    """``transformers``, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError(
            f"{model} needs the Hugging Face extra: pip install 'activelab[hf]' (transformers)"
        ) from e
    return transformers


#: PIL resample codes (what image processors store) -> Preprocess interpolation names
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _hf_preprocess(proc: Any) -> tuple[int, tuple[float, ...], tuple[float, ...], str]:
    """``(size, mean, std, interpolation)`` from a transformers image processor.

    ``proc.size`` is a dict in transformers 4 and a ``SizeDict`` in 5; either way
    ``height`` or ``shortest_edge`` gives the square size (images are resized whole,
    see :class:`~activelab.models.images.Preprocess`).
    """

    def triple(v: Any, default: tuple[float, ...]) -> tuple[float, ...]:
        if v is None:
            return default
        vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        return tuple(vals * 3) if len(vals) == 1 else tuple(vals[:3])

    s = getattr(proc, "size", None)
    get = s.get if isinstance(s, dict) else (lambda k: getattr(s, k, None))
    raw = (get("height") or get("shortest_edge") or get("longest_edge")) if s is not None else None
    size = int(raw) if isinstance(raw, (int, float)) else (int(s) if isinstance(s, int) else 224)
    if getattr(proc, "do_normalize", True):
        mean = triple(getattr(proc, "image_mean", None), IMAGENET_MEAN)
        std = triple(getattr(proc, "image_std", None), IMAGENET_STD)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    resample = getattr(proc, "resample", None)
    interp = _PIL_RESAMPLE.get(int(resample), "bilinear") if isinstance(resample, int) else "bilinear"
    return size, mean, std, interp


def _strip_hf_classifier(module: nn.Module) -> bool:
    """Replace the last Linear of a ``...ForImageClassification`` head with Identity, so the
    model's ``logits`` are the classifier's input features. False if no such head."""
    head = getattr(module, "classifier", None)
    if isinstance(head, nn.Linear):
        module.classifier = nn.Identity()
        return True
    if isinstance(head, nn.Sequential):
        for i in range(len(head) - 1, -1, -1):
            if isinstance(head[i], nn.Linear):
                head[i] = nn.Identity()
                return True
    return False


def _hf_weights_id(config: Any, folder: str | None) -> str:
    """Names the weights for the embedding-cache key: the hub commit, or a digest of a local
    folder's config and weight files (so re-saving a folder invalidates its cache)."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return f"hf:{commit}"
    if folder is None:
        return "hf"
    h = hashlib.sha256()
    for fname in sorted(os.listdir(folder)):
        if fname == "config.json" or fname.endswith((".safetensors", ".bin")):
            h.update(fname.encode())
            with open(os.path.join(folder, fname), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return f"hf:{h.hexdigest()[:16]}"


def hf_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
    """A Hugging Face image model (hub id or ``save_pretrained`` folder) as a body.

    - Checkpoints saved as ``...ForImageClassification`` (``config.architectures``) are
      loaded with that class and their classifier's last Linear replaced by Identity: the
      features are exactly what the pretrained classifier saw (ViT: the final CLS token;
      ConvNeXt/ResNet: pooled, normalised maps; DINOv2: CLS + mean patch token).
    - Other checkpoints load with ``AutoModel``: ``get_image_features`` where the model
      has it (CLIP, SigLIP), else ``pooler_output`` when the pooler's weights come from
      the checkpoint, else the CLS token (3-D hidden states) or spatial mean (4-D).
    - ``interpolate_pos_encoding=True`` is passed where accepted, so ViT-style models
      also run at an ``image_size`` other than the one they were trained at.
    - Preprocessing (size, mean, std, resampling) comes from the image processor saved
      beside the model; without one, ImageNet's at 224 px.

    Decisions depend only on the config, so ``load`` (``load_weights=False``, config only)
    rebuilds the same module and feature function.
    """
    transformers = import_transformers(f"hf/{spec.name}")
    folder = hf_local_folder(spec.name)
    offline = hf_offline(spec.name)  # probes the network at most once for all three files
    config = hf_from_pretrained(transformers.AutoConfig, spec.name, offline=offline)
    archs = list(getattr(config, "architectures", None) or [])
    factories: list[Any] = []
    if any(a.endswith("ForImageClassification") for a in archs):
        factories.append(transformers.AutoModelForImageClassification)
    factories.append(transformers.AutoModel)
    module: nn.Module | None = None
    classifier = False
    for i, factory in enumerate(factories):
        try:
            if spec.pretrained and load_weights:
                candidate = hf_from_pretrained(factory, spec.name, offline=offline, config=config)
            else:
                candidate = factory.from_config(config)
        except ValueError:  # this config has no class for the factory: try the next
            if i == len(factories) - 1:
                raise InputError(
                    f"hf/{spec.name}: transformers has no image model for config type {type(config).__name__}"
                ) from None
            continue
        classifier = factory is transformers.AutoModelForImageClassification and _strip_hf_classifier(candidate)
        if classifier or factory is transformers.AutoModel:
            module = candidate
            break
    assert module is not None

    forward_params = inspect.signature(module.forward).parameters
    kwargs: dict[str, Any] = {}
    image_features = None if classifier else getattr(module, "get_image_features", None)
    if image_features is not None:
        forward_params = inspect.signature(image_features).parameters
    if "interpolate_pos_encoding" in forward_params:
        kwargs["interpolate_pos_encoding"] = True
    pooler = getattr(module, "pooler", None)
    # a pooler with weights of its own is random unless the checkpoint is this very class
    trust_pooler = not (
        isinstance(pooler, nn.Module)
        and any(True for _ in pooler.parameters())
        and archs
        and type(module).__name__ not in archs
    )

    def features(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if classifier:
            return m(pixel_values=x, **kwargs).logits.flatten(1)
        if image_features is not None:
            out = m.get_image_features(pixel_values=x, **kwargs)  # type: ignore[operator]
            return (out if isinstance(out, torch.Tensor) else out.pooler_output).flatten(1)
        out = m(pixel_values=x, **kwargs)
        pooled = getattr(out, "pooler_output", None) if trust_pooler else None
        if pooled is None:
            h = out.last_hidden_state
            pooled = h.mean((2, 3)) if h.ndim == 4 else h[:, 0]
        return pooled.flatten(1)

    try:
        proc = hf_from_pretrained(transformers.AutoImageProcessor, spec.name, offline=offline)
        size, mean, std, interp = _hf_preprocess(proc)
    except (OSError, ValueError, InputError, OfflineError):  # no processor saved: ImageNet defaults
        size, mean, std, interp = 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear"
    size = spec.image_size or size
    dim = probe_dim(module, features, size)
    pre = Preprocess(size=size, mean=mean, std=std, interpolation=interp)  # type: ignore[arg-type]
    if not spec.pretrained:
        wid = "random"
    else:  # load() restores saved weights and its own cache key: no need to hash the folder then
        wid = _hf_weights_id(config, folder) if load_weights else "hf"
    return Body(module, dim, pre, features, wid)


# --- offline-safe loading -------------------------------------------------------


def hf_local_folder(hub_id: str) -> str | None:
    """``hub_id`` as a local folder (e.g. one written by ``save_pretrained``), or None.

    Like transformers itself, an existing folder wins over a hub id of the same name.
    Raises NotFoundError for a name that is clearly a path (starts with ``/``, ``.``,
    ``~``, or has more than one ``/``) but is not an existing folder, and InputError for
    a name that is neither a folder nor a valid hub id.
    """
    expanded = os.path.expanduser(hub_id)
    if os.path.isdir(expanded):
        return expanded
    if hub_id.startswith(("/", ".", "~")) or hub_id.count("/") > 1 or os.sep in hub_id.replace("/", ""):
        raise NotFoundError(
            f"hf/{hub_id}: no such folder. hf/ takes a Hugging Face hub id (e.g. hf/google/vit-base-patch16-224) "
            "or a folder written by a transformers model's save_pretrained()"
        )
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(hub_id)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        pass
    except ValueError as e:  # HFValidationError
        raise InputError(
            f"hf/{hub_id}: not a Hugging Face hub id (namespace/name) nor an existing folder ({e})"
        ) from None
    return None


def hf_offline(hub_id: str) -> bool:
    """Whether ``hub_id`` must be read from the local cache only (no network access).

    A local folder never needs the network; otherwise ``HF_HUB_OFFLINE`` or an
    unreachable huggingface.co (probed once, within :data:`PROBE_TIMEOUT_S`) mean offline.
    """
    if hf_local_folder(hub_id) is not None:
        return True
    return hub.hub_offline_env() or not hub.host_reachable("huggingface.co")


def hf_from_pretrained(factory: Any, hub_id: str, *, offline: bool | None = None, **kwargs: Any) -> Any:
    """``factory.from_pretrained(hub_id)`` that never hangs offline.

    ``hub_id`` is a hub id or a local folder (see :func:`hf_local_folder`); ``offline``
    (from :func:`hf_offline`, to probe the network once for several calls) is worked out
    when None. Offline, only the local cache is used and a miss raises OfflineError.
    """
    local = hf_local_folder(hub_id)
    if local is not None:
        try:
            return factory.from_pretrained(local, **kwargs)
        except (OSError, ValueError) as e:  # ValueError: no/unknown config.json, or no class for it
            raise InputError(
                f"hf/{hub_id}: the folder holds no loadable {getattr(factory, '__name__', 'model')} files "
                f"(write them with save_pretrained(); {type(e).__name__}: {e})"
            ) from e
    if offline is None:
        offline = hf_offline(hub_id)
    try:
        return factory.from_pretrained(hub_id, local_files_only=offline, **kwargs)
    except OSError as e:
        if offline:
            raise hub.offline_error(f"hf/{hub_id}", "huggingface.co", e) from e
        raise
