#!/usr/bin/env bash
# Check the FiftyOne format both ways with FiftyOne's own importer and exporter classes.
# FiftyOne is not in the test venv (it is large, and its Dataset needs a MongoDB server that cannot be
# downloaded offline), so this runs on demand in a throwaway venv: bash scripts/check_fiftyone.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FIFTYONE_VENV:-/tmp/activelab-fiftyone-venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q fiftyone; }
export HF_HUB_OFFLINE=1 FIFTYONE_DO_NOT_TRACK=true
.venv/bin/python - "$work" <<'PY'
import sys
import pandas as pd
from activelab.data.datasets import sample_dir
from activelab.loop.formats.fiftyone import export_fiftyone
from activelab.loop.ingest import import_images
from activelab.store import open_store, sqlite_url
work = sys.argv[1]
store = open_store(sqlite_url(f"{work}/source.db"))
root = sample_dir()
pool = pd.read_csv(root / "pool.csv").head(50).assign(filepath=lambda f: [str(root / p) for p in f.filepath])
import_images(store, pool, add_classes=True)
export_fiftyone(store, f"{work}/activelab-export")
pd.Series({f: l for f, l in zip(pool.filepath, pool.label)}).value_counts().sort_index().to_csv(f"{work}/expected.csv")
PY
"$venv/bin/python" - "$work" <<'PY'
import sys
from collections import Counter
import fiftyone as fo
import fiftyone.utils.data as foud
work = sys.argv[1]
importer = foud.FiftyOneImageClassificationDatasetImporter(f"{work}/activelab-export")
exporter = foud.FiftyOneImageClassificationDatasetExporter(f"{work}/fiftyone-export", export_media=True)
counts = Counter()
with importer, exporter:
    for path, _metadata, label in importer:
        counts[label.label] += 1
        exporter.export_sample(path, label)
print(f"fiftyone {fo.__version__} read activelab's export: {sum(counts.values())} labels {dict(sorted(counts.items()))}")
PY
.venv/bin/python - "$work" <<'PY'
import sys
from collections import Counter
import pandas as pd
from activelab.loop.formats.fiftyone import import_fiftyone
from activelab.store import open_store, sqlite_url
work = sys.argv[1]
store = open_store(sqlite_url(f"{work}/back.db"))
import_fiftyone(store, f"{work}/fiftyone-export", add_classes=True)
back = Counter(c.label for c in store.current_labels().values())
expected = pd.read_csv(f"{work}/expected.csv", index_col=0).iloc[:, 0].to_dict()
assert dict(back) == expected, (dict(back), expected)
print(f"activelab read FiftyOne's export back: {sum(back.values())} labels, the same per class")
PY
