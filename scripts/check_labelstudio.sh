#!/usr/bin/env bash
# Check the Label Studio format and the ML backend against a real Label Studio server, on demand:
#   bash scripts/check_labelstudio.sh
# 1. A project of bundled images with labels and one round's predictions is exported as Label Studio
#    JSON, imported by Label Studio through its API (tasks, annotations, predictions counted), exported
#    back by Label Studio, and imported into a fresh activelab project with the same labels.
# 2. `activelab ls-backend` is connected to a second Label Studio project as its ML backend: Label
#    Studio checks it (health, setup), fetches a prediction for every task, and an annotation made in
#    Label Studio reaches the activelab store through the webhook Label Studio registers.
# Label Studio brings Django and pins of its own, so it lives in a throwaway venv, not the project's.
# Its SSRF guard refuses ML backends on loopback addresses, so it is switched off for this local run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LABEL_STUDIO_VENV:-/tmp/activelab-labelstudio-venv}"
port="${LABEL_STUDIO_PORT:-8093}"
backend_port="${ACTIVELAB_BACKEND_PORT:-9093}"
work="$(mktemp -d)"
[ -x "$venv/bin/label-studio" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q label-studio; }
token="activelab-check-$(date +%s)"
SSRF_PROTECTION_ENABLED=false USE_DEFAULT_BANNED_SUBNETS=false \
LABEL_STUDIO_BASE_DATA_DIR="$work/ls-data" "$venv/bin/label-studio" start --no-browser --port "$port" \
    --username check@example.org --password "check-$token" --user-token "$token" --enable-legacy-api-token \
    > "$work/ls.log" 2>&1 &
ls_pid=$!
backend_pid=""
trap 'kill $ls_pid $backend_pid 2>/dev/null; wait $ls_pid $backend_pid 2>/dev/null; rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
cd "$work"
activelab -q datasets fetch fashion-mnist-sample data --limit 60 --eval-limit 20 > /dev/null
activelab -q init shop > /dev/null
activelab -q import shop data/pool.csv > /dev/null
activelab -q import shop data/seed.csv --add-classes > /dev/null
activelab -q import shop data/eval.csv --split eval > /dev/null
activelab -q query shop --strategy margin -k 10 > /dev/null
activelab -q export shop ls.json --format labelstudio > /dev/null
activelab ls-backend shop --port "$backend_port" > backend.log 2>&1 &
backend_pid=$!
python - "$port" "$token" "$backend_port" <<'PY'
import json, os, sys, time, urllib.request
from pathlib import Path
import pandas as pd
from activelab.loop.formats.labelstudio import import_labelstudio
from activelab.store import open_store, sqlite_url
port, token, backend_port = sys.argv[1:]
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

# 2. the ML backend, live: a project without activelab's predictions, connected to `activelab ls-backend`
plain = [{k: v for k, v in t.items() if k != "predictions"} for t in tasks]
project = call("POST", "/api/projects", {"title": "activelab ML backend", "label_config": config})
call("POST", f"/api/projects/{project['id']}/import", json.dumps(plain).encode())
ml = call("POST", "/api/ml", {"url": f"http://127.0.0.1:{backend_port}", "project": project["id"], "title": "activelab"})
assert ml["state"] == "CO" and ml["model_version"].startswith("activelab-round-"), ml
done = call("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project['id']}",
            {"selectedItems": {"all": True, "excluded": []}})
ids = [t["id"] for t in call("GET", f"/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true")]
shown = [call("GET", f"/api/tasks/{i}") for i in ids]
scored = [p for t in shown for p in t["predictions"] if p["model_version"] == ml["model_version"]]
queued = len(source.round_selection(1))  # the round's selection is the queue; its images score above 0
assert len(scored) == len(tasks) and all(0 <= p["score"] <= 1 for p in scored), (done, len(scored))
assert sum(p["score"] > 0 for p in scored) == queued, [p["score"] for p in scored]
print(f"Label Studio connected the backend ({ml['model_version']}) and stored {len(scored)} of its predictions")
call("PATCH", f"/api/projects/{project['id']}", {"start_training_on_annotation_update": True})
todo = next(t for t in shown if not t["annotations"])
before = source.n_label_events()
call("POST", f"/api/tasks/{todo['id']}/annotations",
     {"result": [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["bag"]}}]})
deadline = time.monotonic() + 30
while source.n_label_events() == before and time.monotonic() < deadline:
    time.sleep(0.5)
history = source.label_history(todo["data"]["activelab_id"])
assert history and history[-1].label == "bag", "the annotation did not reach the activelab store"
print(f"an annotation made in Label Studio reached the store through the webhook (author {history[-1].author})")
PY
