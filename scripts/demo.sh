#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local folder), from generated examples.
set -euo pipefail
cd "$(dirname "$0")/.."
nsp=".venv/bin/nextstat-pro"
demo=$(mktemp -d /tmp/nextstat-pro-demo.XXXXXX)
export NSP_HOME="$demo/home"
export XDG_CONFIG_HOME="$demo/config"        # CLI sessions live here, not in your ~/.config
admin_pw="admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
reviewer_pw="reviewer-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
approver_pw="approver-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

echo "== 1. Example inputs (generated from a seed) in $demo/examples"
$nsp examples write "$demo/examples"
ws="$demo/examples/example_workspace.json"
ps="$demo/examples/example_signal_patchset.json"

echo; echo "== 2. An embedded instance (SQLite + local object store) in $NSP_HOME"
NSP_PASSWORD="$admin_pw" $nsp init --admin admin --printed-name "Dana Administrator"
NSP_NEW_PASSWORD="$reviewer_pw" $nsp user create rita --printed-name "Rita Reviewer" --email rita@example.org
NSP_NEW_PASSWORD="$approver_pw" $nsp user create alan --printed-name "Alan Approver" --email alan@example.org
$nsp role grant rita editor --reason "QA reviewer of the default project"
$nsp role grant alan admin --reason "QA approver of the default project (approval needs the admin role)"

echo; echo "== 3. The registry: immutable, content-addressed versions"
$nsp hub model push example "$ws" --version 1.0.0 --description "four-channel example" --tag analysis=demo
$nsp hub model push example "$ws"                     # identical content: the existing version
$nsp hub patchset push signals "$ps" --base example@1.0.0 --version 1.0.0
$nsp hub dataset push pk-study "$demo/examples/example_pk.csv" --version 0.1.0
$nsp hub model alias example@1.0.0 validated --reason "Demo validation"
$nsp hub model list

echo; echo "== 4. Runs by reference (as the administrator)"
fit_run=$($nsp run fit --model example@validated --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
echo "fit run $fit_run"
$nsp run upper-limit --model example@1.0.0
for patch in sig_1000_0 sig_1300_200 sig_1600_400; do
  $nsp run upper-limit --model "signals@1.0.0#$patch"
done
$nsp run pk-nlme --dataset pk-study@0.1.0
$nsp run upper-limit --workspace "$ws" --patchset "$ps" --patch sig_1100_100   # plain files work too

echo; echo "== 5. NS-Scale: the 125-point signal grid as one job (local backend, 2 workers)"
$nsp submit grid --model signals@1.0.0 --shards 8 --workers 2 --backend local --result-name signal-grid-limits --wait

echo; echo "== 6. The runs table (with the exact registry versions)"
$nsp runs list

echo; echo "== 7. Rita reviews and Alan approves the fit run (electronic signatures, 21 CFR 11)"
NSP_PASSWORD="$reviewer_pw" $nsp login --username rita
NSP_PASSWORD="$reviewer_pw" $nsp sign "$fit_run" --meaning review --reason "Inputs and fit quality checked" --username rita
NSP_PASSWORD="$approver_pw" $nsp login --username alan
NSP_PASSWORD="$approver_pw" $nsp sign "$fit_run" --meaning approval --reason "Approved for the analysis note" --username alan

echo; echo "== 8. Export of the fit run, checked with sha256sum -c and verified offline"
$nsp runs export "$fit_run" "$demo/export"
(cd "$demo/export" && sha256sum -c --quiet SHA256SUMS && echo "sha256sum: all files OK")
$nsp verify "$demo/export" --log-key "$NSP_HOME/witness/log.pub"

echo; echo "== 9. The audit trail: signed checkpoint, an offline inclusion proof, a verified bundle"
NSP_PASSWORD="$admin_pw" $nsp login --username admin
$nsp audit checkpoint
$nsp audit log --action run.signed
$nsp audit prove 3 > "$demo/proof.json"
$nsp audit verify-proof "$demo/proof.json" --key "$NSP_HOME/witness/log.pub"
$nsp audit export --format csv "$demo/audit-bundle"
$nsp audit verify --bundle "$demo/audit-bundle" --key "$NSP_HOME/witness/log.pub"

echo; echo "== 10. NS-Compliance: the fit run's certificate (PDF/A-3b with its evidence), verified offline"
$nsp report run-certificate "$fit_run" --out "$demo/reports"
$nsp verify "$demo/reports/run-certificate.pdf"
$nsp report audit-trail --project default --out "$demo/reports"

echo; echo "== 11. NS-Server: the same instance over HTTP, the CLI as its client"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
$nsp serve --port "$port" --log-level warning &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do .venv/bin/python -c "import httpx,sys; httpx.get('$url/readyz').raise_for_status()" 2>/dev/null && break; sleep 0.2; done
NSP_PASSWORD="$reviewer_pw" $nsp --server "$url" login --username rita
$nsp --server "$url" whoami
$nsp --server "$url" run fit --workspace "$ws"                          # the workspace is uploaded
$nsp --server "$url" runs list --task fit
$nsp --server "$url" runs export "$fit_run" "$demo/export-http"         # streamed as a zip, unpacked here
$nsp verify "$demo/export-http" --log-key "$NSP_HOME/witness/log.pub"
$nsp --server "$url" runs cancel "$fit_run" --reason "not a job" || echo "(refused over HTTP as locally: exit $?)"
$nsp --server "$url" logout
kill "$server_pid" && wait "$server_pid" || true
trap - EXIT

echo; echo "== 12. The whole trail verified: every event, checkpoint and witness, the state re-derived"
$nsp audit verify

echo; echo "Artifacts: object store $NSP_HOME/objects, run export $demo/export, audit bundle $demo/audit-bundle"
