"""Pretrained-weight downloads that fail fast and clearly when offline.

The frameworks' own downloaders (Hugging Face Hub, ``torch.hub``) retry a failing
DNS lookup for about 47 s before giving up. Before asking them to download we
(1) use weights already in their local caches without any network access, then
(2) check in well under a second that the download host is reachable, and
otherwise raise :class:`~activelab.exceptions.OfflineError` naming the model and
the fixes. ``HF_HUB_OFFLINE=1`` is respected: no network access is tried at all.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any
from urllib.parse import urlparse

from activelab.exceptions import OfflineError

#: seconds to wait for a download host's DNS + TCP connect before calling it offline
PROBE_TIMEOUT_S = 2.0


def hub_offline_env() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    DNS resolution has no timeout of its own, so the probe runs in a daemon thread.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True, name=f"activelab-probe-{host}")
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def offline_error(model: str, host: str | None, cause: BaseException | None = None) -> OfflineError:
    where = f" from {host}" if host else ""
    why = "HF_HUB_OFFLINE is set" if hub_offline_env() else "no network is reachable"
    msg = (
        f"cannot download pretrained weights for {model!r}{where}: {why}. Fixes: use the packaged "
        f"offline model create_model('efficientnet_lite0'); or pass pretrained=False to train from scratch; "
        f"or download the weights once on a machine with a network (e.g. run "
        f"create_model({model!r}) there) and copy its cache (~/.cache/huggingface, ~/.cache/torch/hub) here."
    )
    if cause is not None:
        msg += f" ({type(cause).__name__}: {cause})"
    return OfflineError(msg)


# --- timm -----------------------------------------------------------------------


def _timm_cached_file(cfg: Any) -> str | None:
    """Path of ``cfg``'s weights in the local Hugging Face or torch.hub cache, if there."""
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - timm depends on huggingface_hub
            pass
        else:
            names = [getattr(cfg, "hf_hub_filename", None), "model.safetensors", "pytorch_model.bin"]
            for fname in [n for n in names if n]:
                found = try_to_load_from_cache(hub_id, fname)
                if isinstance(found, str) and os.path.exists(found):
                    return found
    url = getattr(cfg, "url", None)
    if url:
        import torch

        cand = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
        if os.path.exists(cand):
            return cand
    return None


def create_timm(name: str, *, pretrained: bool, **kwargs: Any) -> Any:
    """``timm.create_model`` that never hangs offline (see module docstring)."""
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        cfg = timm.models.get_pretrained_cfg(name)  # resolves 'resnet18' to its default tag
    except Exception:  # pragma: no cover - defensive: unknown tag
        cfg = None
    if cfg is None:
        raise OfflineError(
            f"timm model {name!r} has no pretrained weights; pass pretrained=False or pick a name from "
            "timm.list_models(pretrained=True)"
        )
    local = _timm_cached_file(cfg)
    if local is not None:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": local}, **kwargs)
    host = "huggingface.co" if getattr(cfg, "hf_hub_id", None) else urlparse(getattr(cfg, "url", "") or "").hostname
    if hub_offline_env() or not host or not host_reachable(host):
        raise offline_error(f"timm/{name}", host)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, ConnectionError) as e:  # hub errors derive from OSError/HTTPError
        raise offline_error(f"timm/{name}", host, e) from e


# --- torchvision ----------------------------------------------------------------


def torchvision_weights(name: str, pretrained: bool) -> Any:
    """The torchvision weights enum to load (``DEFAULT``) or None; checks it can be had."""
    if not pretrained:
        return None
    import torch
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise OfflineError(f"torchvision model {name!r} has no pretrained weights; pass pretrained=False") from None
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))
    if os.path.exists(cached):
        return weights
    host = urlparse(weights.url).hostname
    if hub_offline_env() or not host or not host_reachable(host):
        raise offline_error(f"torchvision/{name}", host)
    return weights
