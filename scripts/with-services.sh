#!/usr/bin/env bash
# Run a command with the services the test suite needs, on 127.0.0.1, and stop them by PID
# afterwards: a throwaway PostgreSQL cluster and moto_server (S3). Missing Debian packages
# are installed when running as root. Usage: scripts/with-services.sh CMD [ARGS...]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv_bin="$here/.venv/bin"
work=$(mktemp -d /tmp/nsp-services.XXXXXX)
chmod 755 "$work"
pids=()
pg_data=""
pg_bin=""

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  set +e
  [ -n "${SLURM_CONF:-}" ] && scancel --quiet --user=root >/dev/null 2>&1
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast -w >/dev/null 2>&1
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
  if [ -n "${munge_dir:-}" ]; then rm -rf "$munge_dir"; fi
}
trap cleanup EXIT INT TERM

spare_port() { "$venv_bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Debian packages the services need, installed once when missing (root only).
missing=()
[ -n "$(find_pg_bin)" ] || missing+=(postgresql)
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
# The server's SSO (xmlsec1 for SAML, Node.js for the OpenID provider the tests start), reports
# (WeasyPrint's Pango and HarfBuzz, a font; pdftotext and qpdf to check PDFs) and the dashboard's
# browser tests (Debian's Chromium).
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
command -v qpdf >/dev/null || missing+=(qpdf)
for pkg in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-services: installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  else
    echo "with-services: missing ${missing[*]} and not root: tests that need them will fail" >&2
  fi
fi
pg_bin=$(find_pg_bin)
[ -n "$pg_bin" ] || { echo "with-services: PostgreSQL is not installed" >&2; exit 1; }

# PostgreSQL: a fresh cluster owned by the postgres user (initdb refuses to run as root).
pg_data="$work/pg"
mkdir -p "$pg_data"
[ "$(id -u)" = 0 ] && chown postgres "$pg_data" "$work"
pg_port=$(spare_port)
as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg.log" -w \
  -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
  || { cat "$work/pg.log" >&2; exit 1; }
export NSP_TEST_PG_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"

# S3: moto_server from the test dependencies.
s3_port=$(spare_port)
"$venv_bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$venv_bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $s3_port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
export NSP_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1

# SLURM: munge + slurmctld + slurmd, one node on 127.0.0.1 (needs root, as slurmd does).
if [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null; then
  sl="$work/slurm"
  mkdir -p "$sl/state" "$sl/spool" /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; }
  # A munged of this run's own (socket, pid and seed files under /run/munge/<this run>): two runs
  # on one machine must not share the default socket, which the first to exit would take away.
  munge_dir="/run/munge/$(basename "$work")"
  mkdir -p "$munge_dir" && chown munge:munge "$munge_dir" && chmod 0755 "$munge_dir"
  runuser -u munge -- /usr/sbin/munged -F --num-threads=10 --socket="$munge_dir/munge.socket.2" \
    --pid-file="$munge_dir/munged.pid" --seed-file="$munge_dir/munged.seed" \
    --log-file="$munge_dir/munged.log" >"$sl/munged.log" 2>&1 &
  pids+=($!)
  ctld_port=$(spare_port); d_port=$(spare_port)
  cat >"$sl/slurm.conf" <<CONF
ClusterName=nsptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$munge_dir/munge.socket.2
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile=$sl/slurmctld.pid
SlurmdPidFile=$sl/slurmd.pid
SlurmdSpoolDir=$sl/spool
StateSaveLocation=$sl/state
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=nspnode NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$sl/slurm.conf"
  sleep 0.5
  /usr/sbin/slurmctld -D -f "$SLURM_CONF" >"$sl/slurmctld.log" 2>&1 &
  pids+=($!)
  /usr/sbin/slurmd -D -N nspnode -f "$SLURM_CONF" >"$sl/slurmd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    sleep 0.2
  done
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    export NSP_TEST_SLURM=1
  else
    echo "with-services: SLURM did not come up:" >&2; tail -5 "$sl"/*.log >&2
  fi
fi

slurm_state="not started"
[ -n "${NSP_TEST_SLURM:-}" ] && slurm_state="up (SLURM_CONF=$SLURM_CONF)"
echo "with-services: PostgreSQL on 127.0.0.1:$pg_port, S3 (moto) on 127.0.0.1:$s3_port, SLURM $slurm_state" >&2
set +e
"$@"
rc=$?
exit $rc
