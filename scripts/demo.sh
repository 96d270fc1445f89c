#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local folder), from generated examples.
set -euo pipefail
cd "$(dirname "$0")/.."
nsp=".venv/bin/nextstat-pro"
demo=$(mktemp -d /tmp/nextstat-pro-demo.XXXXXX)
export NSP_HOME="$demo/home"
export NSP_PASSWORD="demo-password-$(date +%s)"

echo "== 1. Example inputs (generated from a seed) in $demo/examples"
$nsp examples write "$demo/examples"
ws="$demo/examples/example_workspace.json"
ps="$demo/examples/example_signal_patchset.json"

echo; echo "== 2. An embedded instance (SQLite + local object store) in $NSP_HOME"
$nsp init --admin admin --printed-name "Demo Administrator"

echo; echo "== 3. Runs"
$nsp run fit --workspace "$ws"
$nsp run upper-limit --workspace "$ws"
for patch in sig_1000_0 sig_1300_200 sig_1600_400; do
  $nsp run upper-limit --workspace "$ws" --patchset "$ps" --patch "$patch"
done
$nsp run pk-nlme --dataset "$demo/examples/example_pk.csv"

echo; echo "== 4. The runs table"
$nsp runs list

first=$($nsp runs list --task fit --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
echo; echo "== 5. Export of the fit run $first, checked with sha256sum -c"
$nsp runs export "$first" "$demo/export"
(cd "$demo/export" && sha256sum -c SHA256SUMS)

echo; echo "== 6. The audit trail: signed checkpoint, an offline inclusion proof, a verified bundle"
$nsp audit checkpoint
$nsp audit log --action run. --limit 5
$nsp audit prove 3 > "$demo/proof.json"
$nsp audit verify-proof "$demo/proof.json" --key "$NSP_HOME/witness/log.pub"
$nsp audit export --format csv "$demo/audit-bundle"
$nsp audit verify --bundle "$demo/audit-bundle" --key "$NSP_HOME/witness/log.pub"
$nsp audit verify

echo; echo "Artifacts: object store $NSP_HOME/objects, export $demo/export"
