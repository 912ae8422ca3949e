#!/usr/bin/env bash
# The main job on the embedded default: a local directory repository.
# Creates a sample tree, backs it up twice (full, then incremental after a change),
# lists snapshots, restores the latest and compares it with the source.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
W=${DEMO_DIR:-$PWD/demo-work}
rm -rf "$W"; mkdir -p "$W/src/docs" "$W/src/logs"
export EBAS_REPOSITORY="$W/repo" EBAS_PASSWORD=${EBAS_PASSWORD:-demo-password}
EBAS=.venv/bin/ebas
.venv/bin/python - "$W/src" <<'PY'
import os, random, sys
root = sys.argv[1]; rng = random.Random(42)
words = [w.encode() for w in "backup restore chunk pack index snapshot tree blob host path".split()]
for i in range(200):
    d = os.path.join(root, "docs" if i % 2 else "logs", f"dir{i % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i}.txt"), "wb") as f:
        f.write(b" ".join(rng.choice(words) for _ in range(rng.randint(100, 20000))))
with open(os.path.join(root, "photo.bin"), "wb") as f:
    f.write(rng.randbytes(8 << 20))
PY
$EBAS init
$EBAS backup "$W/src" --tag demo
echo "a new line" >> "$W/src/docs/dir1/file1.txt"
$EBAS backup "$W/src" --tag demo
$EBAS snapshots
$EBAS diff "$($EBAS snapshots --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" latest
$EBAS restore latest --target "$W/restore"
$EBAS check --read-data
$EBAS stats
diff -r "$W/src" "$W/restore$W/src" && echo "demo OK: restore is identical to the source"
