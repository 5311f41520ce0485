"""ActiveLearner: the active-vision README workflow, run as written with activelab's names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab import ActiveLearner
from activelab.exceptions import ActivelabError, InputError, NotFoundError


def frames(sample: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    pool = pd.read_csv(sample / "pool.csv").assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    eval_df = pd.read_csv(sample / "eval.csv").assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    train_df = pool.groupby("label").head(5)
    unlabeled = pool.drop(train_df.index)["filepath"].tolist()
    return train_df, eval_df, unlabeled


def test_readme_workflow(sample: Path, tmp_path: Path) -> None:
    train_df, eval_df, filepaths = frames(sample)
    truth = pd.read_csv(sample / "pool.csv").assign(filepath=lambda f: [str(sample / p) for p in f.filepath])

    al = ActiveLearner("efficientnet_lite0", cache_dir=tmp_path / "cache", image_size=64)
    al.load_dataset(train_df, filepath_col="filepath", label_col="label")
    al.train(epochs=3, lr=1e-3)
    accuracy = al.evaluate(eval_df, filepath_col="filepath", label_col="label")
    assert accuracy > 0.45, accuracy  # 50 labels, 10 classes: chance is 0.1
    assert al.last_eval["confusion_matrix"].shape == (10, 10)
    assert list(al.last_eval["report"].columns) == ["precision", "recall", "f1", "support"]

    pred_df = al.predict(filepaths)
    assert list(pred_df.columns) == ["filepath", "pred_label", "pred_conf", "probs"]
    assert np.allclose(np.stack(pred_df.probs).sum(axis=1), 1, atol=1e-5)

    uncertain_df = al.sample_uncertain(pred_df, num_samples=10)
    assert len(uncertain_df) == 10
    assert uncertain_df.pred_conf.max() <= pred_df.pred_conf.sort_values().iloc[9] + 1e-9
    with pytest.raises(ActivelabError, match="labeling web app.*labeler=label_dataframe"):
        al.label(
            uncertain_df, output_filename="uncertain"
        )  # the app is passed in (tests/server/test_label_dataframe.py)

    labeled_df = truth[truth.filepath.isin(uncertain_df.filepath)]
    al.add_to_train_set(labeled_df, output_filename=tmp_path / "active_labeled")
    assert len(pd.read_parquet(tmp_path / "active_labeled.parquet")) == 60
    al.train()
    assert al.evaluate(eval_df) > 0.45

    diverse = al.sample_diverse(pred_df[~pred_df.filepath.isin(labeled_df.filepath)], num_samples=5)
    random_df = al.sample_random(pred_df, num_samples=5)
    balanced = al.sample(pred_df, num_samples=10, strategy="class_balanced")
    assert len(diverse) == len(random_df) == 5 and len(balanced) == 10
    assert not set(diverse.filepath) & set(al.train_df.filepath)

    al.save(tmp_path / "learner")
    again = ActiveLearner.load(tmp_path / "learner")
    assert again.classes == al.classes
    assert np.allclose(
        np.stack(again.predict(filepaths[:20]).probs), np.stack(al.predict(filepaths[:20]).probs), atol=1e-6
    )


def test_clear_errors(sample: Path, tmp_path: Path) -> None:
    train_df, _, _ = frames(sample)
    al = ActiveLearner("efficientnet_lite0", cache_dir=tmp_path)
    with pytest.raises(InputError, match="load_dataset"):
        al.train()
    with pytest.raises(InputError, match=r"no column\(s\) \['path'\]"):
        al.load_dataset(train_df, filepath_col="path")
    with pytest.raises(InputError, match="without a label"):
        al.load_dataset(train_df.assign(label=None))
    with pytest.raises(NotFoundError, match="do not exist"):
        al.load_dataset(train_df.assign(filepath="/nope.png"))
    with pytest.raises(InputError, match="call train"):
        al.predict(train_df.filepath)
    assert ActiveLearner("efficientnet_lite0", path="full").mode == "finetune"  # the older name of mode, still read


def test_multilabel_learner_on_list_and_pipe_labels(
    pairs: dict[str, list[tuple[str, list[str]]]], tmp_path: Path
) -> None:
    pool, evals = pairs["pool"], pairs["eval"]
    train_df = pd.DataFrame({"filepath": [p for p, _ in pool[:40]], "label": [names for _, names in pool[:40]]})
    known = {name for _, names in pool[:40] for name in names}
    evals = [(p, names) for p, names in evals if set(names) <= known]
    eval_df = pd.DataFrame({"filepath": [p for p, _ in evals], "label": ["|".join(names) for _, names in evals]})

    al = ActiveLearner("efficientnet_lite0", task="multilabel", cache_dir=tmp_path / "cache", image_size=64)
    al.load_dataset(train_df)
    assert al.classes == sorted(known)
    al.train()
    assert al.model is not None and al.model.output == "sigmoid"
    assert 0.0 <= al.evaluate(eval_df) <= 1.0  # subset accuracy: every class of an image right
    assert {"micro_f1", "macro_f1", "map"} <= set(al.last_eval) and "confusion_matrix" not in al.last_eval

    rest = [p for p, _ in pool[40:]]
    pred_df = al.predict(rest)
    assert all(isinstance(labels, list) and set(labels) <= set(al.classes) for labels in pred_df.pred_label)
    probs = np.stack(pred_df.probs)
    assert probs.shape == (20, len(al.classes)) and ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1)  # independent per-class probabilities, not a softmax

    picked = al.sample(pred_df, num_samples=5, strategy="multilabel_uncertainty")
    uncertainty = np.abs(probs.astype(np.float64) - 0.5).mean(axis=1)  # lower: less certain
    assert list(picked.filepath) == [rest[i] for i in np.argsort(uncertainty, kind="stable")[:5]]
    with pytest.raises(InputError, match="'multilabel' task does not provide"):
        al.sample(pred_df, num_samples=5, strategy="entropy")

    al.add_to_train_set(eval_df.head(5), output_filename=tmp_path / "more")
    assert len(al.train_df) == 45 and all(isinstance(labels, list) for labels in al.train_df.label)
    al.save(tmp_path / "learner")
    again = ActiveLearner.load(tmp_path / "learner")
    assert again.task_name == "multilabel" and list(again.train_df.label) == list(al.train_df.label)


def test_a_semi_supervised_learner_trains_on_the_unlabeled_files_it_is_given(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activelab.loop import learner as learner_module

    from .test_round import RecordingModel

    train_df, _, unlabeled = frames(sample)
    built: list[tuple[dict[str, object], RecordingModel]] = []

    def build(settings, classes, **options):  # type: ignore[no-untyped-def]
        built.append((options, RecordingModel(list(classes), semi_supervised=options.get("semi_supervised", "none"))))
        return built[-1][1]

    monkeypatch.setattr(learner_module, "build_model", build)
    al = ActiveLearner("efficientnet_lite0", semi_supervised="auto")
    al.load_dataset(train_df)
    extra = unlabeled[:7]
    report = al.train(unlabeled=[*extra, train_df["filepath"].iloc[0]])  # a labeled file is not unlabeled
    options, model = built[-1]
    assert options["semi_supervised"] == "self_training" and report.n_unlabeled == 7
    assert model.fits[-1]["unlabeled"] == extra and model.fits[-1]["paths"] == train_df["filepath"].tolist()
    supervised = ActiveLearner("efficientnet_lite0")
    supervised.load_dataset(train_df)
    supervised.train(unlabeled=extra)  # none: the files are not even passed
    assert "semi_supervised" not in built[-1][0] and "unlabeled" not in built[-1][1].fits[-1]
    refused = ActiveLearner("efficientnet_lite0", semi_supervised="fixmatch")
    refused.load_dataset(train_df)
    with pytest.raises(InputError, match="'fixmatch' does not run in frozen mode"):
        refused.train()
