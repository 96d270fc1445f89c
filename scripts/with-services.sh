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
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast -w >/dev/null 2>&1
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

spare_port() { "$venv_bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

pg_bin=$(find_pg_bin)
if [ -z "$pg_bin" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-services: installing PostgreSQL (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(find_pg_bin)
  fi
  [ -n "$pg_bin" ] || { echo "with-services: PostgreSQL is not installed and I am not root" >&2; exit 1; }
fi

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

echo "with-services: PostgreSQL on 127.0.0.1:$pg_port, S3 (moto) on 127.0.0.1:$s3_port" >&2
set +e
"$@"
rc=$?
exit $rc
