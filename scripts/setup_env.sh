#!/usr/bin/env bash
# Create or refresh the project-local virtual environment in .venv.
# Usage: scripts/setup_env.sh EXTRAS   (e.g. "ui" or "ui,postgres,dev,tensorboard,peers")
# Re-installs only when pyproject.toml, the constraints or the extras change.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ui}"
venv=.venv
python="${PYTHON:-python3}"
hash="$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)"
stamp="$venv/.activelab-installed"   # lines of "HASH EXTRAS" already installed

satisfied() {
    [ -f "$stamp" ] || return 1
    local line have want
    while read -r line; do
        [ "${line%% *}" = "$hash" ] || continue
        have=",${line#* },"
        for want in ${extras//,/ }; do
            [[ "$have" == *",$want,"* ]] || continue 2
        done
        return 0
    done < "$stamp"
    return 1
}
satisfied && exit 0
if [ ! -x "$venv/bin/python" ]; then
    echo "activelab: creating virtual environment in $venv"
    "$python" -m venv "$venv"
fi
echo "activelab: installing activelab[$extras] into $venv (first time: a few minutes)"
quiet_pip() {  # pip on these machines warns about every local wheel folder it skips; keep real messages
    "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
quiet_pip install --quiet --upgrade pip
quiet_pip install --quiet -c requirements/constraints.txt -e ".[$extras]"
# Remember what is installed, so a later run with the same or fewer extras is free.
echo "$hash $extras" >> "$stamp"
