"""Label-error detection: find the labels most likely wrong, review them, measure the gain.

>>> from activelab.label_errors import find_label_issues, review_queue, ranking_path
>>> ranking = find_label_issues("my-project", folds=5)              # doctest: +SKIP
>>> ranking.head()[["image_id", "given_label", "suggested_label", "score"]]  # doctest: +SKIP
>>> review_queue(store, ranking_path("my-project"))                 # doctest: +SKIP

Out-of-fold probabilities (K-fold CV on the fast path) feed cleanlab's label-quality
scores (Northcutt et al. 2021; its ``multilabel_classification`` module for multi-label
projects); near-duplicates with different labels come from
faiss neighbour search on the embeddings. Detection projects get out-of-fold detections
and cleanlab's ``object_detection`` module: missing, wrong-class and badly placed boxes
(:mod:`activelab.label_errors.detection`). See docs/label_errors.md.
"""

from activelab.label_errors.compare import BeforeAfter, compare_before_after, original_labels
from activelab.label_errors.detection import (
    DEFAULT_BOX_FOLDS,
    FINDING_COLUMNS,
    ISSUE_TYPES,
    BoxIssues,
    BoxOutOfFold,
    out_of_fold_detections,
    project_box_out_of_fold,
    rank_box_issues,
)
from activelab.label_errors.oof import (
    OutOfFold,
    fold_assignment,
    out_of_fold_probs,
    project_out_of_fold,
)
from activelab.label_errors.queue import (
    REVIEW_SOURCES,
    QueueItem,
    load_ranking,
    mix_queues,
    new_priority,
    review_priority,
    review_queue,
)
from activelab.label_errors.rank import (
    DEFAULT_DUPLICATE_DISTANCE,
    RANKING_COLUMNS,
    find_label_issues,
    find_near_duplicates,
    rank_label_issues,
    rank_multilabel_issues,
)
from activelab.label_errors.report import (
    LabelErrorReport,
    box_error_report,
    label_error_report,
    plot_swaps,
    ranking_path,
    swap_matrix,
)

__all__ = [
    "DEFAULT_BOX_FOLDS",
    "DEFAULT_DUPLICATE_DISTANCE",
    "FINDING_COLUMNS",
    "ISSUE_TYPES",
    "RANKING_COLUMNS",
    "REVIEW_SOURCES",
    "BeforeAfter",
    "BoxIssues",
    "BoxOutOfFold",
    "LabelErrorReport",
    "OutOfFold",
    "QueueItem",
    "box_error_report",
    "compare_before_after",
    "find_label_issues",
    "find_near_duplicates",
    "fold_assignment",
    "label_error_report",
    "load_ranking",
    "mix_queues",
    "new_priority",
    "original_labels",
    "out_of_fold_detections",
    "out_of_fold_probs",
    "plot_swaps",
    "project_box_out_of_fold",
    "project_out_of_fold",
    "rank_box_issues",
    "rank_label_issues",
    "rank_multilabel_issues",
    "ranking_path",
    "review_priority",
    "review_queue",
    "swap_matrix",
]
