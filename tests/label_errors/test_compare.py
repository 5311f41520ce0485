"""Corrections are new events; training and export use them; accuracy before vs after review."""

from __future__ import annotations

from pathlib import Path

from activelab.label_errors import compare_before_after, original_labels
from activelab.loop.export import labels_frame
from activelab.loop.session import ActiveSession


def test_correction_keeps_history_and_training_and_export_use_it(planted) -> None:  # type: ignore[no-untyped-def]
    proj = planted.project
    store = proj.store
    images = {img.id: img for img in store.images("pool")}
    flipped_ids = sorted(i for i, img in images.items() if Path(img.path).name in planted.flipped)
    target = flipped_ids[0]
    true, planted_label = planted.flipped[Path(images[target].path).name]
    assert store.current_labels()[target].label == planted_label
    store.add_label(target, true, author="ann", source="correction", note="was a planted flip")
    history = store.label_history(target)
    assert [(e.label, e.source, e.author) for e in history] == [
        (planted_label, "import", "importer"),
        (true, "correction", "ann"),
    ]
    assert store.current_labels()[target].label == true
    labeled = ActiveSession(proj).labeled_set("pool")
    pos = labeled.image_ids.index(target)
    assert store.class_names()[int(labeled.y[pos])] == true
    frame = labels_frame(store).set_index("image_id")
    assert frame.loc[target, "label"] == true and frame.loc[target, "source"] == "correction"
    assert original_labels(proj)[target] == planted_label


def test_compare_before_after_fixing_all_flips(planted) -> None:  # type: ignore[no-untyped-def]
    proj = planted.project
    store = proj.store
    images = {img.id: img for img in store.images("pool")}
    fixes = [
        (i, planted.flipped[Path(img.path).name][0])
        for i, img in images.items()
        if Path(img.path).name in planted.flipped
    ]
    store.add_labels(fixes[:-1], author="ann", source="correction")
    store.add_label(fixes[-1][0], None, author="ann", source="review", note="unsure")
    result = compare_before_after(proj)
    assert result.n_changed == len(fixes) - 1 and result.n_removed == 1
    assert result.n_train_before == 200 and result.n_train_after == 199 and result.n_eval == 50
    assert 0.3 < result.accuracy_before <= 1 and 0.3 < result.accuracy_after <= 1
    print(f"eval accuracy before {result.accuracy_before:.3f} after {result.accuracy_after:.3f}")
    assert result.accuracy_after >= result.accuracy_before - 0.04  # 50 eval images: one is 0.02
