#!/usr/bin/env bash
# Regenerates fixtures/sample.backup: a small real `pg_dump -O -x -Fc` of a
# database shaped like a Mendix app's (a FileDocument table and the model
# version table), made by a throwaway PostgreSQL server. The tests only read
# the committed file; run this when a newer dump format should be covered.
#   usage: tests/archive/make_fixture.sh [PG_BINDIR]   (as root or a normal user)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bindir=${1:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
work=$(mktemp -d)
trap 'run "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# initdb refuses to run as root: use the postgres account then
run() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$work"

run "$bindir/initdb" -D "$work/data" -A trust -U postgres >/dev/null
run "$bindir/pg_ctl" -D "$work/data" -o "-k $work -p 55999 -c listen_addresses=" -l "$work/log" -w start >/dev/null
psql() { "$bindir/psql" -h "$work" -p 55999 -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql -c "create database app"
psql -d app <<'SQL'
create table "system$filedocument" (id bigint primary key, "__uuid__" text, name text, size bigint,
                                    hascontents boolean);
insert into "system$filedocument" values (1, '0d3e301f-5551-46f8-ad44-8de2be084c95', 'a.txt', 5, true);
create table "mendixsystem$version" (versionnumber text);
insert into "mendixsystem$version" values ('1.0.0.40');
SQL
"$bindir/pg_dump" -h "$work" -p 55999 -U postgres -O -x -Fc app >"$here/fixtures/sample.backup"
"$bindir/pg_restore" -l "$here/fixtures/sample.backup" | sed -n '/Dump Version/p;/pg_dump version/p'
