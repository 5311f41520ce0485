#!/usr/bin/env bash
# Check the Label Studio format both ways against a real Label Studio server, on demand:
#   bash scripts/check_labelstudio.sh
# A project of bundled images with labels and one round's predictions is exported as Label Studio
# JSON, imported by Label Studio through its API (tasks, annotations, predictions counted), exported
# back by Label Studio, and imported into a fresh activelab project with the same labels. Label
# Studio brings Django and pins of its own, so it lives in a throwaway venv, not the project's.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LABEL_STUDIO_VENV:-/tmp/activelab-labelstudio-venv}"
port="${LABEL_STUDIO_PORT:-8093}"
work="$(mktemp -d)"
[ -x "$venv/bin/label-studio" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q label-studio; }
token="activelab-check-$(date +%s)"
LABEL_STUDIO_BASE_DATA_DIR="$work/ls-data" "$venv/bin/label-studio" start --no-browser --port "$port" \
    --username check@example.org --password "check-$token" --user-token "$token" --enable-legacy-api-token \
    > "$work/ls.log" 2>&1 &
ls_pid=$!
trap 'kill $ls_pid 2>/dev/null; wait $ls_pid 2>/dev/null; rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
cd "$work"
activelab -q datasets fetch fashion-mnist-sample data --limit 60 --eval-limit 20 > /dev/null
activelab -q init shop > /dev/null
activelab -q import shop data/pool.csv > /dev/null
activelab -q import shop data/seed.csv --add-classes > /dev/null
activelab -q import shop data/eval.csv --split eval > /dev/null
activelab -q query shop --strategy margin -k 10 > /dev/null
activelab -q export shop ls.json --format labelstudio > /dev/null
python - "$port" "$token" <<'PY'
import json, os, sys, time, urllib.request
from pathlib import Path
import pandas as pd
from activelab.loop.formats.labelstudio import import_labelstudio
from activelab.store import open_store, sqlite_url
port, token = sys.argv[1:]
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")
deadline = time.monotonic() + 300
while True:
    try:
        call("GET", "/api/projects")
        break
    except Exception:
        if time.monotonic() > deadline:
            sys.exit("Label Studio did not answer within 300 s (see its log)")
        time.sleep(2)
tasks = json.loads(Path("ls.json").read_text())
config = Path("ls_label_config.xml").read_text()
project = call("POST", "/api/projects", {"title": "activelab check", "label_config": config})
done = call("POST", f"/api/projects/{project['id']}/import", Path("ls.json").read_bytes())
n_ann = sum(len(t.get("annotations", [])) for t in tasks)
n_pred = sum(len(t.get("predictions", [])) for t in tasks)
assert (done["task_count"], done["annotation_count"], done["prediction_count"]) == (len(tasks), n_ann, n_pred), done
print(f"Label Studio imported activelab's export as-is: {len(tasks)} tasks, {n_ann} annotations, {n_pred} predictions")
back = call("GET", f"/api/projects/{project['id']}/export?exportType=JSON")
Path("ls-export.json").write_text(json.dumps(back))
source = open_store(sqlite_url(Path("shop/activelab.db").resolve()))
document_root = os.path.commonpath([img.path for img in source.images("pool")])  # what the export's URLs are relative to
store = open_store(sqlite_url(Path("back.db").resolve()))
report = import_labelstudio(store, "ls-export.json", images_root=document_root, add_classes=True)
def by_hash(s):
    images = {img.id: img.sha256 for img in s.images()}
    return {images[i]: c.label for i, c in s.current_labels(split="pool").items()}
got, want = by_hash(store), by_hash(source)
assert got == want, (f"labels differ after the round trip: {len(got)} read back, {len(want)} stored; "
                     f"{sum(got.get(k) != v for k, v in want.items())} differ; import: {report}")
print(f"activelab read Label Studio's export back: {len(by_hash(store))} labels, the same images and classes")
PY
