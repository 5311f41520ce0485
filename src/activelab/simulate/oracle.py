"""The simulated annotator: answers a round's picks from the known labels, whole images or asked pixels.

For class and box labels an answer is the image's whole label. For segmentation masks
(``(H, W) uint8`` per image) the oracle answers an image strategy with the whole mask and a
region strategy with the mask inside the asked pixels only (``IGNORE`` elsewhere), and keeps
what it revealed across rounds: an image may be asked again for other regions, and its
partial mask grows (the region-based protocol of Mackowiak et al., BMVC 2018; Cai et al.,
CVPR 2021). An image with any revealed pixel is trained on; it leaves the selectable pool
once no pixel is left to ask for.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from activelab.tasks.masks import IGNORE


def is_mask_targets(truth: np.ndarray) -> bool:
    """Whether ``truth`` is an object array of ``(H, W)`` masks (segmentation targets)."""
    return truth.dtype == object and len(truth) > 0 and isinstance(truth[0], np.ndarray) and truth[0].ndim == 2


class Oracle:
    """What has been answered so far over a pool of ``truth`` targets (the task's, one per image).

    ``labeled``: ``(N,)`` bool, images with an answer (the rows a model trains on);
    ``exclude``: rows never to select again (None: the labeled ones; masks: the images whose
    every pixel is known); ``targets``: the answers (masks: the revealed part, IGNORE elsewhere,
    None for untouched images).
    """

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth
        self.masks = is_mask_targets(truth)
        self.labeled = np.zeros(len(truth), dtype=bool)
        self._known: dict[int, np.ndarray] = {}  # masks: pool position -> bool (H, W) revealed pixels

    @property
    def targets(self) -> np.ndarray:
        if not self.masks:
            return self.truth
        out = np.full(len(self.truth), None, dtype=object)
        for pos, known in self._known.items():
            out[pos] = np.where(known, self.truth[pos], IGNORE).astype(np.uint8)
        return out

    @property
    def exclude(self) -> np.ndarray | None:
        if not self.masks:
            return None
        full = np.zeros(len(self.truth), dtype=bool)
        full[[pos for pos, known in self._known.items() if known.all()]] = True
        return full

    @property
    def n_pixels(self) -> int:
        """Pixels answered so far (masks; 0 for other targets)."""
        return int(sum(int(known.sum()) for known in self._known.values()))

    def answer(
        self, positions: np.ndarray, asked: Mapping[int, np.ndarray] | None = None, *, n_classes: int = 0
    ) -> list[int]:
        """Answer the images at ``positions``: whole, or for masks only the ``asked[position]`` pixels.

        Returns, per class, the newly revealed pixels of those answers (masks; ``n_classes`` long),
        or an empty list for other targets (their class counts come from :func:`~.data.class_counts`).
        """
        positions = np.asarray(positions, dtype=np.int64)
        self.labeled[positions] = True
        if not self.masks:
            return []
        counts = np.zeros(n_classes, dtype=np.int64)
        for pos in positions.tolist():
            truth = np.asarray(self.truth[pos])
            ask = np.ones(truth.shape, dtype=bool) if asked is None or pos not in asked else np.asarray(asked[pos])
            known = self._known.get(pos, np.zeros(truth.shape, dtype=bool))
            new = ask & ~known
            self._known[pos] = known | ask
            values = truth[new]
            counts += np.bincount(values[values != IGNORE], minlength=n_classes)[:n_classes]
        return counts.tolist()

    def state(self) -> dict[str, np.ndarray]:
        """The revealed pixels as arrays to save (``np.savez``): one packed bit mask per touched image."""
        return {str(pos): np.packbits(known.ravel()) for pos, known in self._known.items()}

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Read back :meth:`state` (the images it names become labeled)."""
        for key, bits in state.items():
            pos = int(key)
            shape = np.asarray(self.truth[pos]).shape
            self._known[pos] = np.unpackbits(np.asarray(bits))[: int(np.prod(shape))].reshape(shape).astype(bool)
            self.labeled[pos] = True
