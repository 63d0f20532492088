#!/usr/bin/env bash
# The fleet acceptance test (see Tests/Fleet/README.md):
#
#   Tests/Fleet/run.sh BIN_DIR [fleet.py options]
#
# BIN_DIR holds secret-rotator and genauth-mock (CI: "$(swift build --show-bin-path)", the
# debug build). Needs etcd 3.4 on PATH (Debian: etcd-server; etcd-client for debugging) and
# python3 (stdlib only). Starts a 3-member etcd cluster on free 127.0.0.1 ports, one
# genauth-mock, 3 candidate rotators and 5 followers in a new ${TMPDIR:-/tmp}/secret-rotator-fleet.XXXXXX,
# prints a PASS or FAIL line per acceptance check with its figures, and exits 1 if any failed.
# Every process it starts is stopped on exit; the work directory is removed on success and kept
# (its path printed) on failure, or always with FLEET_KEEP=1.
# Options after BIN_DIR go to fleet.py: --only propagation,member,failover,fencing,etcd-down,notice-owed,
# --rotations N, --member-rotations N, --kills N, --verbose, --etcd-selftest (no daemon).
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-64}"; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage 0 ;; esac
bin_dir=$(cd "$1" && pwd) || { echo "run.sh: no directory $1" >&2; exit 64; }
shift
for tool in secret-rotator genauth-mock; do
    [ -x "$bin_dir/$tool" ] || { echo "run.sh: $bin_dir/$tool not found; build first" >&2; exit 1; }
done
for tool in etcd etcdctl openssl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install etcd-server etcd-client)" >&2; exit 1; }
done

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/secret-rotator-fleet.XXXXXX")
chmod 0700 "$work"
orchestrator=
cleanup() {
    local rc=$?
    if [ -n "$orchestrator" ]; then
        kill -TERM "$orchestrator" 2>/dev/null || true
        wait "$orchestrator" 2>/dev/null || true
    fi
    if [ "$rc" -eq 0 ] && [ -z "${FLEET_KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "run.sh: work directory kept: $work" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 -u "$here/fleet.py" --bin "$bin_dir" --work "$work" "$@" &
orchestrator=$!
status=0
wait "$orchestrator" || status=$?
orchestrator=
exit "$status"
