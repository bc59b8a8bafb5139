# Shared by up, down and status (sourced, not executed).
# Knows the stack's directory layout, its default ports and how to find and stop
# the daemons it started.

STACK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The marker file tells `down` that a directory really is a stack before it deletes it.
STACK_MARKER=.mxpc-stack

# Daemons in start order; `down` stops them in reverse.
STACK_DAEMONS=(pg-tls pg-plain pg-wronghost ceph-mon ceph-osd radosgw k8s)

stack_dir() {
  local d=${1:-${MXPC_STACK_DIR:-/tmp/mxpc-stack}}
  # Absolute path: it ends up in env.sh and in daemon command lines.
  case $d in /*) ;; *) d=$PWD/$d ;; esac
  printf '%s\n' "${d%/}"
}

# Ports, each overridable from the environment.
stack_ports() {
  PG_TLS_PORT=${MXPC_PG_TLS_PORT:-55432}
  PG_PLAIN_PORT=${MXPC_PG_PLAIN_PORT:-55433}
  PG_WRONGHOST_PORT=${MXPC_PG_WRONGHOST_PORT:-55434}
  S3_PORT=${MXPC_S3_PORT:-57480}
  S3_HTTPS_PORT=${MXPC_S3_HTTPS_PORT:-57443}
  CEPH_MON_PORT=${MXPC_CEPH_MON_PORT:-53300}
  K8S_PORT=${MXPC_K8S_PORT:-56443}
}

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

# Any live process left in the process group (a zombie counts as gone).
group_alive() {
  local pgid=$1 pid
  for pid in $(ps -e -o pid= -o pgid= | awk -v g="$pgid" '$2 == g {print $1}'); do
    grep -q "^State:.*Z" "/proc/$pid/status" 2>/dev/null || return 0
  done
  return 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
