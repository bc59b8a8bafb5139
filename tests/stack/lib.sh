# Shared by up, down and status (sourced, not executed).
# Knows the stack's directory layout, its default ports and how to find and stop
# the daemons it started.

# Builtins only up to the preflight checks, so that a bare PATH still gets a clear message.
STACK_HERE=${BASH_SOURCE[0]%/*}
case $STACK_HERE in /*) ;; *) STACK_HERE=$PWD/$STACK_HERE ;; esac

# The marker file tells `down` that a directory really is a stack before it deletes it.
STACK_MARKER=.mxpc-stack

# Daemons in start order; `down` stops them in reverse.
STACK_DAEMONS=(pg-tls pg-plain pg-wronghost ceph-mon ceph-osd radosgw k8s sts rds mendix-cloud
  azurite entra entra-pg azure-rbac sm vault keyvault)

stack_dir() {
  local d=${1:-${MXPC_STACK_DIR:-/tmp/mxpc-stack}}
  # Absolute path: it ends up in env.sh and in daemon command lines.
  case $d in /*) ;; *) d=$PWD/$d ;; esac
  printf '%s\n' "${d%/}"
}

# Ports, each overridable from the environment: NAME:VARIABLE:DEFAULT. The
# defaults lie below the kernel's ephemeral range (32768-60999), so an outgoing
# connection can never be holding one of them when a server starts.
STACK_PORTS=(
  PG_TLS_PORT:MXPC_PG_TLS_PORT:25432
  PG_PLAIN_PORT:MXPC_PG_PLAIN_PORT:25433
  PG_WRONGHOST_PORT:MXPC_PG_WRONGHOST_PORT:25434
  S3_PORT:MXPC_S3_PORT:27480
  S3_HTTPS_PORT:MXPC_S3_HTTPS_PORT:27443
  CEPH_MON_PORT:MXPC_CEPH_MON_PORT:23300
  K8S_PORT:MXPC_K8S_PORT:26443
  STS_PORT:MXPC_STS_PORT:27490
  RDS_PORT:MXPC_RDS_PORT:25435
  MENDIX_CLOUD_PORT:MXPC_MENDIX_CLOUD_PORT:27500
  AZURITE_PORT:MXPC_AZURITE_PORT:27510
  ENTRA_PORT:MXPC_ENTRA_PORT:27520
  ENTRA_PG_PORT:MXPC_ENTRA_PG_PORT:25436
  SM_PORT:MXPC_SM_PORT:27530
  VAULT_PORT:MXPC_VAULT_PORT:27540
  KEYVAULT_PORT:MXPC_KEYVAULT_PORT:27550
  AZURE_RBAC_PORT:MXPC_AZURE_RBAC_PORT:27610
)

# Sets each NAME of STACK_PORTS from its variable or its default.
stack_ports() {
  local spec name var def
  for spec in "${STACK_PORTS[@]}"; do
    IFS=: read -r name var def <<<"$spec"
    printf -v "$name" %s "${!var:-$def}"
  done
}

# Azurite (the Azure Storage emulator) from the npm registry: tools/install-deps puts
# this version under /opt/mxpc (3.35.0 is the last that runs on Node.js 20; 3.36 wants
# Node 21, 3.37 Node 22). MXPC_AZURITE names another azurite-blob executable.
AZURITE_VERSION=3.35.0
AZURITE_PREFIX=/opt/mxpc/azurite-$AZURITE_VERSION

die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# The postmaster's children and the daemons' threads live in the daemon's own
# session/process group (started with setsid), so the group id is the pid.
pid_file() { printf '%s/pids/%s.pid\n' "$1" "$2"; }

read_pid() {
  local f
  f=$(pid_file "$1" "$2")
  [ -s "$f" ] && cat "$f"
}

# A pid counts as ours only while its command line names the stack directory:
# protects against killing an unrelated process that reused a recorded pid.
pid_is_ours() {
  local dir=$1 pid=$2
  [ -r "/proc/$pid/cmdline" ] || return 1
  grep -q "^State:.*Z" "/proc/$pid/status" 2>/dev/null && return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"
}

# Any live process left in the process group (a zombie counts as gone). Reads /proc
# directly: `ps` is not on every minimal system.
group_alive() {
  local pgid=$1 f stat
  for f in /proc/[0-9]*/stat; do
    read -r stat 2>/dev/null <"$f" || continue
    stat=${stat##*) }   # after "pid (comm) ": state ppid pgrp ...
    set -- $stat
    [ "$3" = "$pgid" ] && [ "$1" != Z ] && return 0
  done
  return 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Signal each recorded daemon that is still ours, wait until its whole process group
# is gone, escalate to SIGKILL after a while. Returns non-zero if something survived.
# PostgreSQL gets SIGQUIT (immediate shutdown: it stops its children itself), Ceph
# SIGKILL (in-memory store, nothing to flush), the emulator SIGTERM.
stack_stop() {
  local dir=$1 d pid sig i left=() p
  local n=${#STACK_DAEMONS[@]}
  for ((i = n - 1; i >= 0; i--)); do
    d=${STACK_DAEMONS[i]}
    pid=$(read_pid "$dir" "$d") || continue
    pid_is_ours "$dir" "$pid" || continue
    case $d in
      pg-*) sig=QUIT ;;
      ceph-*|radosgw) sig=KILL ;;
      *) sig=TERM ;;
    esac
    kill -s "$sig" "$pid" 2>/dev/null || true
    left+=("$pid")
  done
  for ((i = 0; i < 100 && ${#left[@]} > 0; i++)); do
    [ "$i" = 60 ] && for p in "${left[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    local still=()
    for p in "${left[@]}"; do group_alive "$p" && still+=("$p"); done
    left=("${still[@]+"${still[@]}"}")
    [ ${#left[@]} = 0 ] || sleep 0.05
  done
  [ ${#left[@]} = 0 ] || { echo "stack: still running: ${left[*]}" >&2; return 1; }
}
