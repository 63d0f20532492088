#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS on a temporary copy of its committed
# seed corpus (Tests/Fuzz/corpus/<name>/). Exits 1 if any target crashed, timed out or ran out
# of memory, after printing the reproducer's path and its bytes in hex; keep the reproducer
# (minimized: <target> -minimize_crash=1 -runs=10000 <file>) as a test in Tests/SecretRotatorTests.
#
#   Tests/Fuzz/run.sh SECONDS [TARGET ...]     TARGET: ConfigFuzz, APIAnswerFuzz (default both)
#
# The build uses the default .build tree, like CI's debug and ASan steps: SECRET_ROTATOR_FUZZ=1
# only changes the flags of this package's own targets, so the dependencies' debug build is
# reused and only our code is recompiled (instrumented). A following plain `swift build`
# recompiles our code again without instrumentation.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -d /opt/swift/usr/bin ]]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

seconds=${1:?usage: Tests/Fuzz/run.sh SECONDS [ConfigFuzz|APIAnswerFuzz ...]}
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(ConfigFuzz APIAnswerFuzz)

corpus_of() {
    case $1 in
        ConfigFuzz) echo config ;;
        APIAnswerFuzz) echo api-answer ;;
        *) echo "unknown fuzz target $1" >&2; exit 64 ;;
    esac
}

# ConfigFuzz: -detect_leaks=0. TOMLKit leaks on every load (Tests/Fuzz/lsan.supp), so libFuzzer
# would run a full leak check after every input: 23 instead of ~100 inputs/s. So leaks in the
# config code go unchecked here (ARC makes them rare); APIAnswerFuzz keeps leak checks.
# -dict: each target's words (keys, header words, numbers at integer limits).
flags_of() {
    case $1 in
        ConfigFuzz) echo -detect_leaks=0 -dict=Tests/Fuzz/config.dict ;;
        APIAnswerFuzz) echo -detect_leaks=1 -dict=Tests/Fuzz/api-answer.dict ;;
    esac
}

export SECRET_ROTATOR_FUZZ=1
build_start=$SECONDS
for target in "${targets[@]}"; do
    corpus_of "$target" >/dev/null
    echo "== building $target"
    swift build --product "$target"
done
bin=$(swift build --show-bin-path)
echo "== fuzz targets built in $((SECONDS - build_start))s"

work=$(mktemp -d "${TMPDIR:-/tmp}/secret-rotator-fuzz.XXXXXX")
# LeakSanitizer runs after inputs; Tests/Fuzz/lsan.supp names the leaks of dependencies.
export LSAN_OPTIONS="suppressions=$PWD/Tests/Fuzz/lsan.supp:print_suppressions=0"
# Swift's own crash backtracer would inspect the crashed process under ASan and report its own
# reads as heap overflows, hiding the real crash; libFuzzer and ASan print the stack instead.
export SWIFT_BACKTRACE=enable=no
failed=0
for target in "${targets[@]}"; do
    name=$(corpus_of "$target")
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    cp Tests/Fuzz/corpus/"$name"/* "$work/$target/corpus/"
    echo "== fuzzing $target for ${seconds}s (seeds: Tests/Fuzz/corpus/$name, $(ls "$work/$target/corpus" | wc -l) files)"
    # -max_len=4096: configs and API answers are small; the input limits for long ones
    #   (dotted keys, nesting, size) have their own tests.
    # -timeout=10: one input taking 10 s is a hang (the daemon parses every answer inline).
    # -rss_limit_mb=2048: the machine has little memory and runs builds next to us.
    # -print_final_stats=1: executions and coverage in the CI log.
    set +e
    "$bin/$target" "$work/$target/corpus" \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$target/artifacts/" -print_final_stats=1 $(flags_of "$target") \
        >"$work/$target/log" 2>&1
    status=$?
    set -e
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added|Done [0-9]+ runs)' \
        "$work/$target/log" || true
    tail -n 3 "$work/$target/log" | grep -E 'cov:|ft:' || true
    reproducers=$(find "$work/$target/artifacts" -type f)
    if [[ $status -ne 0 || -n $reproducers ]]; then
        failed=1
        echo "!! $target failed (exit $status); log: $work/$target/log"
        grep -E -A40 'ERROR: |Fatal error|property violated|==[0-9]+==' "$work/$target/log" | head -n 80 || tail -n 60 "$work/$target/log"
        for file in $reproducers; do
            echo "!! reproducer: $file ($(stat -c %s "$file") bytes)"
            od -An -tx1 -v "$file" | head -n 256
        done
    else
        echo "== $target: no crash"
    fi
done
if [[ $failed -eq 0 ]]; then rm -rf "$work"; else echo "!! kept $work"; fi
exit "$failed"
