#!/usr/bin/env bash
# The benchmark suite (Tests/README.md, Benchmarks); see Tests/Benchmarks/README.md.
#
#   Tests/Benchmarks/run.sh [--apps N] [--smoke] [--bin DIR]
#
# --apps N   apps in the P1 pass and the P3 start (default 10000; --smoke: 200)
# --smoke    small N and short durations: proves every benchmark runs (CI); never a timing check
# --bin DIR  directory holding release builds of secret-rotator and genauth-mock; default:
#            build them with `swift build -c release --scratch-path .build-release`
#
# Every benchmark prints one line of figures (detail lines start with two spaces). Exits 1
# only if a benchmark could not run at all. The work directory is made under ${TMPDIR:-/tmp}:
# point TMPDIR at the file system you want measured. Loopback only.
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo_root/Tests/Benchmarks
apps=
smoke=
bin_dir=

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-64}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --apps) [ $# -ge 2 ] || usage; apps=$2; shift 2 ;;
        --apps=*) apps=${1#--apps=}; shift ;;
        --smoke) smoke=1; shift ;;
        --bin) [ $# -ge 2 ] || usage; bin_dir=$2; shift 2 ;;
        --bin=*) bin_dir=${1#--bin=}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage ;;
    esac
done
if [ -n "$apps" ] && ! [[ $apps =~ ^[0-9]+$ && $apps -ge 2 && $apps -le 20000 ]]; then
    echo "run.sh: --apps must be a whole number from 2 to 20000 (the config's [[app]] limit)" >&2
    exit 64
fi

if [ -z "$bin_dir" ]; then
    export PATH=/opt/swift/usr/bin:$PATH
    (cd "$repo_root" && swift build -c release --scratch-path .build-release >&2)
    bin_dir=$(cd "$repo_root" && swift build -c release --scratch-path .build-release --show-bin-path)
fi
bin_dir=$(cd "$bin_dir" && pwd)
for tool in secret-rotator genauth-mock; do
    [ -x "$bin_dir/$tool" ] || { echo "run.sh: $bin_dir/$tool not found; build a release first" >&2; exit 1; }
done

# The SDK venv is the conformance check's (Tests/SDKConformance/run.sh): same place, same pins.
venv=$repo_root/.build/sdk-venv
if ! "$venv/bin/python" -c 'import genauth, authing, websockets' 2>/dev/null; then
    echo "run.sh: making the SDK venv in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check genauth==5.1.0 authing==5.1.0 websockets >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/secret-rotator-bench.XXXXXX")
orchestrator=
cleanup() {
    if [ -n "$orchestrator" ]; then
        kill -TERM "$orchestrator" 2>/dev/null || true
        wait "$orchestrator" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cc -O2 -pthread -o "$work/durable_replace" "$here/durable_replace.c"

args=(--bin "$bin_dir" --work "$work/w" --durable "$work/durable_replace" --venv "$venv")
[ -n "$apps" ] && args+=(--apps "$apps")
[ -n "$smoke" ] && args+=(--smoke)
mkdir -m 0700 "$work/w"
python3 "$here/bench.py" "${args[@]}" &
orchestrator=$!
status=0
wait "$orchestrator" || status=$?
orchestrator=
# Memory per step over a long run (soak.py): figures only here; CI bounds a shorter run.
if [ -n "$smoke" ]; then soak_steps=(--steps 2000 --baseline 500); else soak_steps=(--steps 10000 --baseline 1000); fi
python3 "$here/soak.py" --bin "$bin_dir" "${soak_steps[@]}" --timeout 600 || status=1
exit "$status"
