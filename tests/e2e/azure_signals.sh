#!/usr/bin/env bash
# SIGINT and SIGTERM at every step of the Azure paths, on the local stack:
# demo-azure (the account key) and demo-azure-wi (Workload Identity: Entra
# tokens for Blob Storage and the database). Azurite and the Entra ID stand-in
# are reached through tests/faults/s3_fault_proxy.py (https), which holds one
# chosen request (not forwarded), or its answer once the server took it: the
# run is then at that step, and the signal comes. Steps: a backup's Get Blob, a backup's upload of
# -f azblob://... (its blocks sent, the block list never); a restore's token
# exchange and token renewal, Put Blob, Put Block, the point between the last
# Put Block and the Put Block List (over an existing blob and a new one), the
# database phase (pg_restore's SQL loaded, paused by a wrapper),
# reading -f azblob://...; a copy from demo-azure into demo-azure-wi and into
# demo-copy (S3), during its file copy. A restore's steps get SIGINT in one
# environment and SIGTERM in the other, the rest both signals. Each run: exit 130/143 with one error
# line naming the signal, nothing on stdout, no working directory left, the
# database as it was (every table's rows), the app's replicas as they were, no
# archive (no file, no blob, no uncommitted blocks at an azblob:// target), and
# in the environment's container every blob as it was or the complete file,
# never a blob with only uncommitted blocks, and uncommitted blocks left beside
# an existing blob only with the run's line saying so (Azure discards them
# after 7 days; tests/e2e/azure_blobs.py checks it).
# Needs MXPC_STACK_ENV; reseeds before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
config=$MXPC_ENTRA_DIR/config.json
cp "$config" "$work/config.json.orig"
proxies=()
cleanup() {
  for p in "${proxies[@]}"; do kill "$p" 2>/dev/null; done
  cp "$work/config.json.orig" "$config"
  rm -rf "$work"
  reseed >/dev/null
}
trap cleanup EXIT
export SSL_CERT_FILE=$MXPC_AZURE_CA_BUNDLE TMPDIR=$work/tmp
unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AZURE_CLIENT_SECRET AZURE_FEDERATED_TOKEN_FILE AZURE_STORAGE_KEY \
  AZURE_STORAGE_SAS_TOKEN
mkdir "$work/tmp" "$work/out"
az() { python3 "$src/tests/e2e/azure_blobs.py" "$@"; }
export AZURE_BLOBS_CACHE=$work/md5.json
fail_setup() { echo "FAIL: $1"; echo "0 passed, 1 failed"; exit 1; }

reseed >"$work/seed.log" 2>&1 || { tail -20 "$work/seed.log"; fail_setup "seeding"; }

# --- the proxies, and the environments' storage endpoint through the blob proxy -------------------
tls=$MXPC_STACK_DIR/tls
start_proxy() { # start_proxy NAME TARGET-PORT CERT CA: its port in NAME_port
  python3 "$src/tests/faults/s3_fault_proxy.py" --target "127.0.0.1:$2" --rules "$work/$1.rules" \
    --log "$work/$1.log" --tls-cert "$tls/$3.crt" --tls-key "$tls/$3.key" --target-ca "$4" >"$work/$1.out" 2>&1 &
  proxies+=($!)
  wait_for "grep -qs 'listening on' '$work/$1.out'" 10 || fail_setup "the $1 proxy did not start"
  printf -v "$1_port" %s "$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/$1.out")"
}
start_proxy blob "$MXPC_AZURITE_PORT" azure-server "$MXPC_AZURE_CA"
start_proxy entra "$MXPC_ENTRA_PORT" entra-server "$MXPC_ENTRA_CA"
endpoint=https://127.0.0.1:$blob_port/$MXPC_AZURE_ACCOUNT_NAME
for s in demo-azure-file-credentials demo-azure-wi-file-credentials; do
  kubectl -n mendix patch secret "$s" --type merge \
    -p "{\"stringData\":{\"storage-azure-blob-endpoint\":\"$endpoint\"}}" >/dev/null || fail_setup "patching $s"
done
# the apps run (replicas 1): --stop-app must bring that back however the run ends
for a in demo-azure demo-azure-wi; do
  kubectl -n mendix patch mendixapp "$a" --type merge -p '{"spec":{"replicas":1}}' >/dev/null
done
replicas_of() { kubectl -n mendix get mendixapp "$1" -o jsonpath='{.spec.replicas}'; }

# Workload Identity for the runs on demo-azure-wi, its token exchange through the Entra proxy
python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" --sa demo-azure-wi \
  --aud api://AzureADTokenExchange >"$work/token"
wi=(env AZURE_AUTHORITY_HOST="https://127.0.0.1:$entra_port" AZURE_TENANT_ID="$MXPC_AZURE_TENANT_ID"
  AZURE_CLIENT_ID="$MXPC_AZURE_WI_CLIENT_ID" AZURE_FEDERATED_TOKEN_FILE="$work/token")

# pg_restore through a wrapper that, with RELAY_PAUSE set, passes the first 4 KiB of the
# SQL it writes (loaded by the tool), touches RELAY_PAUSE and waits there
mkdir "$work/bin"
ln -s "$MXPC_PG_BINDIR/psql" "$MXPC_PG_BINDIR/pg_dump" "$work/bin/"
cat >"$work/bin/pg_restore" <<EOF
#!/usr/bin/env python3
import os, subprocess, sys, time
real = "$MXPC_PG_BINDIR/pg_restore"
if not os.environ.get("RELAY_PAUSE") or "-l" in sys.argv[1:]:
    os.execv(real, [real] + sys.argv[1:])
p = subprocess.Popen([real] + sys.argv[1:], stdout=subprocess.PIPE)
sys.stdout.buffer.write(p.stdout.read(4096))
sys.stdout.buffer.flush()
open(os.environ["RELAY_PAUSE"], "w").close()
time.sleep(60)
sys.stdout.buffer.write(p.stdout.read())
sys.exit(p.wait())
EOF
chmod +x "$work/bin/pg_restore"
export MXPC_PG_BINDIR=$work/bin

# --- a large file in each environment: 16 MiB + 64 KiB, two blocks of the default 16 MiB ----------
sql() { # sql DB STATEMENT
  local port=$MXPC_PG_TLS_PORT
  [ "$1" = demo_azure ] || port=$MXPC_PG_PLAIN_PORT
  PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$port" \
    -U "$MXPC_PG_SUPERUSER" -d "$1" -c "$2"
}
# every table of schema public, its rows in order, in one md5
fingerprint() {
  sql "$1" "select md5(string_agg(tablename || ':' || query_to_xml(format('select * from public.%I t order by t::text',
    tablename), false, false, '')::text, ',' order by tablename)) from pg_tables where schemaname = 'public'"
}
head -c $((16 * 1024 * 1024 + 65536)) /dev/urandom >"$work/big.bin"
head -c $((16 * 1024 * 1024 + 65536)) /dev/urandom >"$work/other.bin"
big=0e0e0e0e-0000-4000-8000-0000000b1b0b
for db in demo_azure demo_azure_wi; do
  ct=${db//_/-}-files
  az put "$ct" "$big" "$work/big.bin" || fail_setup "the large blob in $ct"
  sql "$db" "create temp table x as select * from \"system\$filedocument\" where hascontents order by id limit 1;
    update x set id = id + 987654321, fileid = fileid + 987654321, __uuid__ = '$big', size = $(stat -c %s "$work/big.bin");
    insert into \"system\$filedocument\" select * from x" || fail_setup "the large file's row in $db"
done

# --- the archives, the states and fingerprints every run is checked against ----------------------
"$bin" -q backup -n mendix -e demo-azure -f "$work/a.tar.gz" >/dev/null 2>"$work/err" || fail_setup "backup of demo-azure"
"${wi[@]}" "$bin" -q backup -n mendix -e demo-azure-wi -f "$work/wi.tar.gz" >/dev/null 2>"$work/err" \
  || { cat "$work/err"; fail_setup "backup of demo-azure-wi"; }
"$bin" run /dev/stdin "$work/a.tar.gz" <<'LUA' >"$work/err" 2>&1 || { cat "$work/err"; fail_setup "the archive in archives/"; }
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
c:create_bucket("archives")
for _, o in ipairs(assert(c:list("archives", "signals/"))) do assert(c:delete("archives", o.key)) end
assert(c:put("archives", "signals/a.tar.gz", { path = arg[1] }))
LUA
for ct in demo-azure-files demo-azure-wi-files; do
  az state "$ct" >"$work/$ct.expected" && cp "$work/$ct.expected" "$work/$ct.now" || fail_setup "the state of $ct"
done
declare -A fp
for db in demo_azure demo_azure_wi demo_copy; do fp[$db]=$(fingerprint "$db"); done
cat >"$work/uploads.lua" <<'EOF'
local c = assert(require("mxpc.s3").client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
print(#assert(c:list_multipart_uploads("demo-copy-files")))
EOF

# --- one interrupted run ----------------------------------------------------------------------------
rule_set=0
rules() { # rules PROXY JSON: the proxy's rules from now on (each set its own text, so that the proxy counts anew)
  rule_set=$((rule_set + 1))
  local list=${2%]}
  [ "$list" = "[" ] || list="$list,"
  printf '%s {"set": %d, "times": 0}]\n' "$list" $rule_set >"$work/$1.rules.tmp" && mv "$work/$1.rules.tmp" "$work/$1.rules"
}
ms() { echo $(( (${2/./} - ${1/./}) / 1000 )); } # ms T0 T1: milliseconds between two $EPOCHREALTIMEs
held() { grep -qE '"action": "h(ang|old)"' "$work/$1.log"; } # held PROXY: a request or its answer is held there
# interrupt NAME SIG READY -- COMMAND...: runs COMMAND (the program, perhaps behind env), sends
# SIG once the condition READY holds, and checks what every interrupted run must leave
interrupt() {
  local name=$1 sig=$2 ready=$3 want
  shift 4
  : >"$work/blob.log"
  : >"$work/entra.log"
  rm -f "$work/paused"
  local t0=$EPOCHREALTIME
  "$@" >"$work/out.txt" 2>"$work/err" & pid=$!
  if ! wait_for "$ready" 30; then
    kill -KILL $pid; wait $pid
    rules blob '[]'; rules entra '[]'
    bad "SIG$sig $name: the run reached that point"
    return 1
  fi
  local t1=$EPOCHREALTIME
  kill -"$sig" $pid; wait $pid; code=$?
  local t2=$EPOCHREALTIME
  rules blob '[]'; rules entra '[]'
  want=$([ "$sig" = INT ] && echo 130 || echo 143)
  check "SIG$sig $name: exit $want ($code; $(ms "$t0" "$t1") ms to that point, $(ms "$t1" "$t2") ms to the end)" \
    '[ "$code" = "$want" ]'
  check "... one error line, naming the signal" \
    '[ "$(grep -c "^error:" "$work/err")" = 1 ] && grep -qx "error: interrupted by SIG$sig" "$work/err"'
  check "... nothing on stdout, no working directory left" \
    '[ ! -s "$work/out.txt" ] && [ -z "$(find "$work" -name ".mxpc-work*")" ] && [ -z "$(ls -A "$work/tmp")" ]'
}
# the environment as it was: its database, its app's replicas, its container (see azure_blobs.py)
unchanged() { # unchanged ENV [EXPECTED]: EXPECTED the state of the complete files the run wrote
  local app=$1 db=${1//-/_} ct=$1-files expected=${2:-$work/$1-files.expected}
  check "... $app's database as it was" '[ "$(fingerprint "$db")" = "${fp[$db]}" ]'
  check "... $app's app runs again (replicas 1)" '[ "$(replicas_of "$app")" = 1 ]'
  az state "$ct" >"$work/$ct.after"
  if CONTAINER=$ct az check "$work/$ct.now" "$work/$ct.after" "$expected" "$work/err" >"$work/problems"; then
    ok "... $ct: every blob as it was or complete, uncommitted blocks only where the run says so"
  else
    bad "... $ct: $(paste -sd';' "$work/problems")"
  fi
  mv "$work/$ct.after" "$work/$ct.now"
}
no_archive_blob() { # no_archive_blob KEY: nothing at archives/KEY, committed or not
  local s
  s=$(az state archives "$1")
  [ -z "$s" ] || { echo "archives/$1: $s" >>"$work/err"; false; }
}
block_lists() { # block_lists PATH-PART: the Put Block Lists the blob proxy forwarded for it, by size
  grep '"method": "PUT"' "$work/blob.log" | grep "$1" | grep 'comp=blocklist' | grep -v '"action": "hang"' \
    | sed -n 's/.*"length": \([0-9]*\).*/\1/p'
}
put_block_list_empty=$(printf '%s' '<?xml version="1.0" encoding="utf-8"?><BlockList></BlockList>' | wc -c)

# restore_point N ENV: the restore of ENV (--stop-app) interrupted by $sig at its step N
restore_point() {
  local e=$2 ct=$2-files archive run restore small had
  if [ "$e" = demo-azure ]; then archive=$work/a.tar.gz; run=("$bin"); else archive=$work/wi.tar.gz; run=("${wi[@]}" "$bin"); fi
  restore=(restore -n mendix -e "$e" -f "$archive" --stop-app)
  case $1 in
  0)
    small=$(tar -tzf "$archive" | sed -n 's|^tree/.*/||p' | grep -vx "$big" | head -1) # a file of the archive
    rules blob "[{\"method\": \"PUT\", \"key\": \"$ct/$small\", \"action\": \"hang\"}]"
    interrupt "restore $e: during a Put Blob" "$sig" "held blob" -- "${run[@]}" "${restore[@]}"
    unchanged "$e" ;;
  1)
    # the first block lands (its answer held): beside the existing blob, and the run says so
    rules blob "[{\"method\": \"PUT\", \"key\": \"$ct/$big?comp=block&\", \"action\": \"hold\"}]"
    interrupt "restore $e: during the Put Blocks (one in)" "$sig" "held blob" -- "${run[@]}" "${restore[@]}"
    unchanged "$e" ;;
  2)
    # another blob of that name: it stays, the blocks sent stay uncommitted beside it, and the run says so
    az put "$ct" "$big" "$work/other.bin"
    az state "$ct" >"$work/$ct.now"
    had=$(sed -n "s/^$big [^ ]* //p" "$work/$ct.now")
    rules blob "[{\"method\": \"PUT\", \"key\": \"$ct/$big?comp=blocklist\", \"action\": \"hang\"}]"
    interrupt "restore $e: between the last Put Block and the Put Block List, over another blob" "$sig" "held blob" -- \
      "${run[@]}" "${restore[@]}"
    check "... the blob is the other one, this run's 2 blocks uncommitted beside it ($had before)" \
      'grep -qx "$big $(md5sum <"$work/other.bin" | cut -d" " -f1) $((had + 2))" <(az state "$ct" "$big")'
    expect_err "... and the run says they stay until Azure discards them after 7 days" \
      "^warn: azblob://$ct/$big: the blocks of the failed upload stay uncommitted beside the existing blob; Azure discards them after 7 days$"
    unchanged "$e"
    az put "$ct" "$big" "$work/big.bin"
    az state "$ct" >"$work/$ct.now" ;;
  3)
    # no blob of that name: after it, no blob and no uncommitted blocks
    az delete "$ct" "$big"
    az state "$ct" >"$work/$ct.now"
    rules blob "[{\"method\": \"PUT\", \"key\": \"$ct/$big?comp=blocklist\", \"action\": \"hang\"}]"
    interrupt "restore $e: between the last Put Block and the Put Block List, no blob there" "$sig" "held blob" -- \
      "${run[@]}" "${restore[@]}"
    check "... no blob, no uncommitted blocks" '[ -z "$(az state "$ct" "$big")" ]'
    unchanged "$e"
    az put "$ct" "$big" "$work/big.bin"
    az state "$ct" >"$work/$ct.now" ;;
  4)
    interrupt "restore $e: during the database phase (pg_restore's SQL held)" "$sig" '[ -e "$work/paused" ]' -- \
      env RELAY_PAUSE="$work/paused" "${run[@]}" "${restore[@]}" --database-only
    check "... had stopped the app" 'grep -q "app stopped" "$work/err"'
    unchanged "$e" ;;
  esac
}

# Each step of a restore is interrupted once in each environment, by SIGINT in one and
# SIGTERM in the other (the two signals take one path: what differs is the exit code
# and the message); the steps of Workload Identity, the backups and the reading of
# -f azblob:// get both signals; the copies one each.
round=0
for sig in INT TERM; do
  # --- backup of demo-azure ---------------------------------------------------------------------------
  rules blob "[{\"method\": \"GET\", \"key\": \"demo-azure-files/$big\", \"action\": \"hang\"}]"
  interrupt "backup: while it reads the blobs (Get Blob held)" $sig "held blob" -- \
    "$bin" backup -n mendix -e demo-azure -f "$work/out/b.tar.gz"
  check "... no archive" '[ -z "$(ls -A "$work/out")" ]'
  unchanged demo-azure

  arch=signals/b-$sig.tar.gz
  # its one full block goes as the backup commits, before the Put Block List: it lands (its
  # answer held), then the signal: it is discarded, the block list never sent
  rules blob "[{\"method\": \"PUT\", \"key\": \"archives/$arch?comp=block&\", \"action\": \"hold\"}]"
  AZURE_STORAGE_KEY=$MXPC_AZURE_ACCOUNT_KEY interrupt "backup -f azblob://: while its blocks go (a Put Block in)" \
    $sig "held blob" -- "$bin" backup -n mendix -e demo-azure -f "azblob://$MXPC_AZURE_ACCOUNT_NAME/archives/$arch" \
    --archive-endpoint "$endpoint"
  check "... no blob and no uncommitted blocks at azblob://$MXPC_AZURE_ACCOUNT_NAME/archives/$arch" \
    "no_archive_blob $arch"
  check "... no block list committed ($(block_lists "$arch" | paste -sd, ) bytes: only the empty one that discards the blocks)" \
    '! block_lists "$arch" | grep -vqx "$put_block_list_empty"'
  unchanged demo-azure

  # --- restore of demo-azure and demo-azure-wi ----------------------------------------------------------
  for p in 0 1 2 3 4; do
    if [ $(((p + round) % 2)) = 0 ]; then restore_point $p demo-azure; else restore_point $p demo-azure-wi; fi
  done

  # --- Workload Identity: the token exchange, and its renewal ----------------------------------------
  rules entra '[{"method": "POST", "key": "/oauth2/v2.0/token", "action": "hang"}]'
  interrupt "restore demo-azure-wi: during the token exchange" $sig "held entra" -- \
    "${wi[@]}" "$bin" restore -n mendix -e demo-azure-wi -f "$work/wi.tar.gz" --stop-app
  unchanged demo-azure-wi

  # tokens of 4 s, renewed in their last second: before_restore waits 3 s, then the next
  # request renews the storage token, and that exchange is held
  entra_lifetime 4
  cat >"$work/wait.lua" <<EOF
return { before_restore = function()
  io.open("$work/paused", "w"):close()
  require("mxpc.runtime").sleep(3)
end }
EOF
  interrupt "restore demo-azure-wi: during a token renewal" $sig \
    '[ -e "$work/paused" ] && rules entra "[{\"method\": \"POST\", \"key\": \"/oauth2/v2.0/token\", \"action\": \"hang\"}]" \
      && wait_for "held entra" 10' -- \
    "${wi[@]}" "$bin" -v restore -n mendix -e demo-azure-wi -f "$work/wi.tar.gz" --stop-app --hooks "$work/wait.lua"
  expect_err "... (a renewal: the storage token was fetched before)" "Azure token for https://storage.azure.com/.default obtained"
  unchanged demo-azure-wi
  entra_lifetime 3600

  # --- restore -f azblob://: while the archive is read (its second read, the restore's) -------------
  rules blob '[{"method": "GET", "key": "archives/signals/a.tar.gz", "action": "pass"},
    {"method": "GET", "key": "archives/signals/a.tar.gz", "action": "hang"}]'
  AZURE_STORAGE_KEY=$MXPC_AZURE_ACCOUNT_KEY interrupt "restore -f azblob://: while it reads the archive" $sig \
    "held blob" -- "$bin" restore -n mendix -e demo-azure -f "azblob://$MXPC_AZURE_ACCOUNT_NAME/archives/signals/a.tar.gz" \
    --archive-endpoint "$endpoint" --stop-app
  unchanged demo-azure

  # --- copy: demo-azure into demo-azure-wi (SIGINT), into demo-copy on S3 (SIGTERM), during the file copy
  if [ $sig = INT ]; then
    rules blob "[{\"method\": \"PUT\", \"key\": \"demo-azure-wi-files/\", \"action\": \"hang\"}]"
    interrupt "copy demo-azure into demo-azure-wi: during the file copy" $sig "held blob" -- \
      "${wi[@]}" "$bin" copy --from mendix/demo-azure --to mendix/demo-azure-wi --stop-app
    unchanged demo-azure-wi "$work/demo-azure-files.expected"
  else
    rules blob "[{\"method\": \"GET\", \"key\": \"demo-azure-files/$big\", \"action\": \"hang\"}]"
    interrupt "copy demo-azure into demo-copy (S3): during the file copy" $sig "held blob" -- \
      "$bin" copy --from mendix/demo-azure --to mendix/demo-copy --stop-app
    check "... demo-copy's database as it was" '[ "$(fingerprint demo_copy)" = "${fp[demo_copy]}" ]'
    check "... demo-copy's app runs again" '[ "$(replicas_of demo-copy)" = 1 ]'
    check "... no unfinished multipart upload in demo-copy-files" '[ "$("$bin" run "$work/uploads.lua")" = 0 ]'
  fi
  round=$((round + 1))
done

finish
