#!/usr/bin/env bash
# End-to-end test of the secret-rotator .deb under a real systemd 252.
#
# Boots a throw-away systemd as PID 1 of a container made from the host's own /usr
# (systemd-nspawn --directory=/ --volatile=yes --boot; see the "systemd" section of Sources/SecretRotator/SecretRotator.docc/Architecture.md), installs the .deb
# with dpkg inside it, runs genauth-mock as a transient unit, and drives the daemon through
# systemctl and journalctl: start/READY/STATUS, files with mode/owner/group, an on_rotate hook
# in the unit's sandbox, journal fields, the message catalog, no secret in the journal or a
# hook's argv/environment, reload (RELOADING=1/READY=1, good and bad config), a watchdog
# restart of a hung (SIGSTOPped) daemon, stop, systemd-analyze verify/security, and dpkg
# install/upgrade/purge; lintian on both .debs, the installed man pages and bash completion,
# the shipped (fully commented) rotator.toml refused with "no settings", and `rotate` from a
# root shell reaching the daemon that alone holds the credential. Consumers told over D-Bus:
# the generated polkit rule, real consumer units calling the mock's token endpoint every 10 ms
# (the outage per rotation is printed, a figure, not a check), what polkit refuses the daemon's
# user, a consumer whose reload fails in `status` and the journal, and no secret on the bus.
#
# Runs as root on a host whose PID 1 need not be systemd. Installs what it needs.
# Environment:
#   SECRET_ROTATOR_DEB, SECRET_ROTATOR_MOCK_DEB  prebuilt packages (else built with
#                                   packaging/build-deb.sh into .build-release/debs)
#   SECRET_ROTATOR_BIN_DIR          passed to build-deb.sh: package these binaries
#   E2E_KEEP=1                      keep the work directory (logs) after the run
# Exit status: 0 when every check passed, 1 when one failed, 2 when the setup failed.
# shellcheck disable=SC2016 # dpkg-query -f '${Status}' is dpkg's syntax, not the shell's
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/Tests/EndToEnd
# Relative package paths are relative to where the script was started.
for variable in SECRET_ROTATOR_DEB SECRET_ROTATOR_MOCK_DEB; do
    if [[ -n ${!variable:-} ]]; then
        printf -v "$variable" '%s' "$(realpath -- "${!variable}")"
    fi
done
# The host's working directory does not exist inside the container: commands entered with
# nsenter would fail getcwd().
cd /
started=$(date +%s.%N)
unit=secret-rotator.service

# --- output and bookkeeping ---------------------------------------------------------------
results=()
failures=0
say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
pass() { results+=("PASS  $1"); say "PASS  $1"; }
fail() { results+=("FAIL  $1${2:+: $2}"); failures=$((failures + 1)); say "FAIL  $1${2:+: $2}"; }
check() { # check NAME COMMAND... : PASS when COMMAND succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
setup_failed() { printf 'e2e: setup failed: %s\n' "$*" >&2; exit 2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) -eq 0 ]] || setup_failed "must run as root (systemd-nspawn, nsenter)"

# --- cleanup: everything this script started, by PID ----------------------------------------
work=$(mktemp -d /var/tmp/sr-e2e.XXXXXX)   # /var/tmp: the overlay upper dir must not be tmpfs-on-tmpfs
nspawn_pid=""
pid1=""
collector_pid=""
cgroup_name=sr-e2e-$$
machine=sr-e2e-$$

cleanup() {
    local rc=$?
    set +e
    if [[ -n $collector_pid ]] && kill -0 "$collector_pid" 2>/dev/null; then
        kill "$collector_pid"
        wait "$collector_pid" 2>/dev/null
    fi
    if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM to nspawn = SIGRTMIN+3 to the container's systemd = orderly poweroff.
        kill -TERM "$nspawn_pid"
        local deadline=$((SECONDS + 15))
        while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            say "container did not power off in 15 s; killing nspawn $nspawn_pid"
            kill -KILL "$nspawn_pid"
        fi
        wait "$nspawn_pid" 2>/dev/null
    fi
    local hierarchy
    for hierarchy in systemd unified; do
        [[ -d /sys/fs/cgroup/$hierarchy/$cgroup_name ]] &&
            find "/sys/fs/cgroup/$hierarchy/$cgroup_name" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
    if [[ ${E2E_KEEP:-0} == 1 ]]; then
        say "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tools --------------------------------------------------------------------------------
step "system packages"
export DEBIAN_FRONTEND=noninteractive
# systemd-container: systemd-nspawn; libsystemd-dev: the daemon links libsystemd; dpkg-dev and
# binutils: build-deb.sh (dpkg-shlibdeps, strip); pkg-config: the CSystemd module;
# jq/curl/python3: talking to the mock; libsqlite3-dev: the state database (GRDB);
# lintian: the package check; man-db and groff-base: `man -l` on the installed pages (the
# container's /usr is the host's, so they are there too); polkitd and dbus: the daemon tells
# consumer units over the system bus, and polkitd applies the rule the unit generates for that.
packages=(systemd systemd-container libsystemd-dev libsqlite3-dev pkg-config dpkg-dev binutils util-linux jq curl python3
    lintian man-db groff-base polkitd dbus)
if ! apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${packages[@]}" >/dev/null; then
    apt-get update -qq   # a fresh machine may have stale lists
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${packages[@]}" >/dev/null
fi
say "systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'), $(systemd-nspawn --version | sed -n 1p)"

# --- 2. packages -----------------------------------------------------------------------------
step "packages"
deb=${SECRET_ROTATOR_DEB:-}
mock_deb=${SECRET_ROTATOR_MOCK_DEB:-}
if [[ -z $deb || -z $mock_deb ]]; then
    "$repo/packaging/build-deb.sh" "$repo/.build-release/debs" | sed 's/^/   /'
    version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' "$repo/Sources/SecretRotator/Version.swift")
    arch=$(dpkg --print-architecture)
    deb=$repo/.build-release/debs/secret-rotator_${version}_${arch}.deb
    mock_deb=$repo/.build-release/debs/secret-rotator-mock_${version}_${arch}.deb
fi
[[ -f $deb && -f $mock_deb ]] || setup_failed "packages not found: $deb $mock_deb"
mkdir -p "$work/debs" "$work/usr-upper"
cp "$deb" "$work/debs/secret-rotator.deb"
cp "$mock_deb" "$work/debs/secret-rotator-mock.deb"
# A second version of the same package, to test a real upgrade (the control file differs only).
deb_version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: ${deb_version}+e2e1/" "$work/repack/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 -b "$work/repack" "$work/debs/secret-rotator-next.deb" >/dev/null
rm -rf "$work/repack"
say "secret-rotator $deb_version: $deb"
say "Depends: $(dpkg-deb -f "$deb" Depends)"

step "lintian"
# The packages as built, not the +e2e1 repack. Errors and warnings fail (and are shown; info
# tags are not: they are mostly spelling guesses in dependencies' strings). Overrides (each with its reason, from packaging/lintian/) are listed from the
# packages themselves: lintian 2.116 with --show-overrides fails on an overridden error.
lintian_clean() {
    local rc=0 t0 package
    t0=$(date +%s.%N)
    timeout 600 lintian --fail-on error,warning "$deb" "$mock_deb" >"$work/lintian.log" 2>&1 || rc=$?
    grep -v '^running with root privileges' "$work/lintian.log" | sed 's/^/   /'
    for package in "$deb" "$mock_deb"; do
        dpkg-deb --fsys-tarfile "$package" | tar -xO --wildcards './usr/share/lintian/overrides/*' 2>/dev/null |
            grep -v '^#' | sed 's/^/   override: /' || true
    done
    say "lintian: rc $rc after $(elapsed "$t0") s"
    [[ $rc -eq 0 ]]
}
check "lintian --fail-on error,warning passes on both .debs" lintian_clean

# --- 3. unit checks on the host ---------------------------------------------------------------
step "systemd-analyze security --offline=yes (host)"
security_out=$(systemd-analyze security --offline=yes "$repo/packaging/secret-rotator.service" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$security_out")
grep '✗' <<<"$security_out" | sed 's/  */ /g; s/^/   /' || true
say "overall exposure: ${exposure:-unknown}"
if [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }'; then
    pass "systemd-analyze security exposure $exposure <= 1.5"
else
    fail "systemd-analyze security exposure <= 1.5" "got '${exposure:-none}'"
fi

# --- 4. the container ----------------------------------------------------------------------------
step "boot systemd in a container"
# The daemon binary goes to /usr/bin, so /usr is the host's /usr with a private writable
# overlay (host /usr is untouched). dpkg needs the host's package database (libc6 & co. are
# "installed"): it is bind-mounted read-only and copied into the container's tmpfs /var.
# The fresh /etc makes systemd's first-boot presets enable every unit of the host's /usr with
# an [Install] section. etcd.service (etcd-server on the host) wants network-online.target,
# which never comes under --private-network: the boot would stay "starting". Masked on the
# kernel command line; masking a unit that does not exist is harmless.
for hierarchy in systemd unified; do
    [[ -d /sys/fs/cgroup/$hierarchy ]] && mkdir -p "/sys/fs/cgroup/$hierarchy/$cgroup_name"
done
# man-db reads /etc/manpath.config, a conffile of the host's man-db (installed above), which
# the container's fresh /etc lacks: `man 8 secret-rotator` and systemd-analyze verify's check
# of the unit's Documentation=man: links need it.
etc_binds=()
[[ -f /etc/manpath.config ]] && etc_binds+=(--bind-ro=/etc/manpath.config)
boot_started=$(date +%s.%N)
(
    # nspawn --keep-unit creates payload/ and supervisor/ in the cgroup it runs in: give it its own.
    for hierarchy in systemd unified; do
        [[ -d /sys/fs/cgroup/$hierarchy ]] && echo "$BASHPID" >"/sys/fs/cgroup/$hierarchy/$cgroup_name/cgroup.procs"
    done
    exec systemd-nspawn --quiet --directory=/ --volatile=yes --boot --machine="$machine" \
        --register=no --keep-unit --private-network --console=pipe \
        --bind-ro=/etc/alternatives \
        "${etc_binds[@]}" \
        --overlay="/usr:$work/usr-upper:/usr" \
        --bind-ro=/var/lib/dpkg:/run/host-dpkg \
        --bind-ro="$work/debs:/run/e2e/debs" \
        systemd.firstboot=off systemd.mask=systemd-firstboot.service \
        systemd.mask=etcd.service \
        </dev/null >"$work/nspawn.log" 2>&1
) &
nspawn_pid=$!

deadline=$((SECONDS + 30))
while :; do
    pid1=$(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null | awk '{ print $1; exit }') || true
    [[ -n $pid1 && $(readlink "/proc/$pid1/exe" 2>/dev/null) == /usr/lib/systemd/systemd ]] && break
    pid1=""
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/nspawn.log" >&2; setup_failed "systemd-nspawn exited"; }
    ((SECONDS < deadline)) || setup_failed "the container's systemd did not appear within 30 s"
    sleep 0.05
done

# Run a command inside the container, with a clean environment (nsenter does not give the
# container's one).
cx() {
    nsenter --target "$pid1" --all --root --wd -- \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
# Write stdin to a file inside the container.
cx_write() { # PATH MODE
    # shellcheck disable=SC2016 # expanded by the inner sh
    cx sh -c 'umask 077; mkdir -p "${1%/*}" && cat >"$1.e2e-tmp" && chmod "$2" "$1.e2e-tmp" && mv "$1.e2e-tmp" "$1"' sh "$1" "$2"
}
prop() { cx systemctl show -P "$1" "$unit"; }

# poll until COMMAND succeeds or SECONDS pass; no sleep-and-hope.
wait_for() { # SECONDS COMMAND...
    local deadline
    deadline=$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.3f", now + t }')
    shift
    while ! "$@"; do
        awk -v d="$deadline" -v now="$(date +%s.%N)" 'BEGIN { exit !(now > d) }' && return 1
        sleep 0.1
    done
}

system_settled() {
    local state
    state=$(cx systemctl is-system-running 2>/dev/null) || true
    [[ $state == running || $state == degraded ]]
}
wait_for 60 system_settled || setup_failed "the container did not finish booting"
state=$(cx systemctl is-system-running 2>/dev/null) || true
say "container up: nspawn $nspawn_pid, systemd $pid1, state $state, $(elapsed "$boot_started") s"
if [[ $state != running ]]; then
    cx systemctl --failed --no-pager || true
fi
cx cp -a /run/host-dpkg /var/lib/dpkg
# The container's network is private (lo only), so network-online.target would wait 2 min
# for systemd-networkd-wait-online to time out; the unit is After=network-online.target.
cx systemctl mask --now systemd-networkd-wait-online.service >/dev/null 2>&1
# A host image built with Docker has /usr/sbin/policy-rc.d exiting 101 ("start no service
# during docker build"), and the container's /usr is the host's: deb-systemd-invoke in the
# maintainer scripts would then, as it should, not stop or restart anything. A real host has
# none; remove it from the container's /usr overlay (the host's file stays).
if cx test -e /usr/sbin/policy-rc.d; then
    say "removing the host image's /usr/sbin/policy-rc.d ($(cx sh -c 'grep -v "^#" /usr/sbin/policy-rc.d | grep -v "^$" | tr "\n" " "')) inside the container"
    cx rm -f /usr/sbin/policy-rc.d
fi
# The host's stat overrides name groups that do not exist in the container's fresh /etc
# (ssl-cert...), and dpkg refuses to run with them; they concern other packages.
cx truncate -s 0 /var/lib/dpkg/statoverride

journal_cursor() { cx journalctl --show-cursor -n 0 -q | sed -n 's/^-- cursor: //p'; }
# Every journal entry after CURSOR, as JSON lines; the callers pick entries with jq. Never with
# journalctl's own matches: given --after-cursor= and a match (SYSLOG_IDENTIFIER=, _PID=1...),
# journalctl 252 steps over "the cursor entry" even when that entry does not match, and so
# drops the first matching entry after the cursor (seen here: PID 1's "Watchdog timeout" line;
# a MESSAGE_ID= match found nothing because its only entry was the one dropped).
journal_after() { cx journalctl --after-cursor="$1" --all -o json --no-pager; }
# The daemon's entries after CURSOR.
daemon_after() { journal_after "$1" | jq -c 'select(.SYSLOG_IDENTIFIER == "secret-rotator")'; }
# PID 1's entries about the unit after CURSOR.
pid1_after() { journal_after "$1" | jq -c --arg unit "$unit" 'select(._PID == "1" and .UNIT == $unit)'; }

# --- 5. install ------------------------------------------------------------------------------------
step "dpkg -i (install)"
if cx dpkg -i /run/e2e/debs/secret-rotator-mock.deb /run/e2e/debs/secret-rotator.deb >"$work/dpkg-install.log" 2>&1; then
    sed 's/^/   /' "$work/dpkg-install.log"
    pass "dpkg -i installs both packages"
else
    sed 's/^/   /' "$work/dpkg-install.log"
    fail "dpkg -i installs both packages"
    exit 1
fi
installed_ok() {
    [[ $(cx dpkg-query -W -f '${Status}' secret-rotator) == "install ok installed" ]] &&
        cx getent passwd secret-rotator >/dev/null &&
        [[ $(cx getent group secret-readers) == *secret-rotator* ]] &&
        [[ $(cx stat -c '%a %U %G' /var/lib/secret-rotator) == "711 secret-rotator secret-rotator" ]] &&
        [[ $(cx stat -c '%a %U %G' /var/lib/secret-rotator/secrets) == "750 secret-rotator secret-readers" ]]
}
check "postinst created user secret-rotator, group secret-readers, state dirs 0711 and secrets/ 0750" installed_ok
not_enabled() {
    local enabled active
    enabled=$(cx systemctl is-enabled "$unit" 2>/dev/null) || true
    active=$(cx systemctl is-active "$unit" 2>/dev/null) || true
    say "after install: is-enabled=$enabled is-active=$active"
    [[ $enabled == disabled && $active == inactive ]]
}
check "package does not enable or start the service before it is configured" not_enabled
catalog_installed() {
    [[ $(cx journalctl --list-catalog | grep -c ' secret-rotator: ') -eq 10 ]]
}
check "journalctl --list-catalog has the 10 secret-rotator entries" catalog_installed

step "man pages, completions and the shipped rotator.toml"
man_renders() { # PAGE: rc 0, a NAME section. (groff's warnings are lintian's groff-message,
    # checked on the host: the container's fresh /etc lacks groff's /etc/groff/mdoc.local.)
    local rc=0
    cx env MANWIDTH=80 man -l "$1" 2>"$work/man.err" | sed 's/\x1b\[[0-9;]*m//g' >"$work/man.out" || rc=$?
    say "man -l $1: rc $rc, $(wc -l <"$work/man.out") lines"
    head -n 3 "$work/man.err" | sed 's/^/   stderr: /'
    sed -n '1,5s/^/   /p' "$work/man.out"
    [[ $rc -eq 0 && -s $work/man.out ]] && grep -q '^NAME' "$work/man.out"
}
man_secret_rotator() {
    man_renders /usr/share/man/man1/secret-rotator.1.gz && grep -q 'check-config' "$work/man.out"
}
check "man -l renders the installed secret-rotator.1.gz (rc 0, NAME, its subcommands)" man_secret_rotator
check "man -l renders the installed genauth-mock.1.gz" man_renders /usr/share/man/man1/genauth-mock.1.gz
man_by_name() { # SECTION NAME WORD: `man SECTION NAME` finds the installed page through man-db
    # (not -l), renders it with a NAME section and shows WORD.
    local rc=0
    cx env MANWIDTH=80 man "$1" "$2" 2>"$work/man.err" | sed 's/\x1b\[[0-9;]*m//g' >"$work/man.out" || rc=$?
    say "man $1 $2: rc $rc, $(wc -l <"$work/man.out") lines"
    head -n 3 "$work/man.err" | sed 's/^/   stderr: /'
    sed -n '1,3s/^/   /p' "$work/man.out"
    [[ $rc -eq 0 ]] && grep -q '^NAME' "$work/man.out" && grep -q -- "$3" "$work/man.out"
}
check "man 5 rotator.toml renders (NAME, the [cluster] table)" man_by_name 5 rotator.toml 'lease_ttl'
check "man 8 secret-rotator renders (NAME, EXIT STATUS, the polkit-rule command)" man_by_name 8 secret-rotator 'polkit-rule'
unit_documentation() {
    local docs
    docs=$(cx systemctl show -P Documentation "$unit")
    say "Documentation=$docs"
    [[ $docs == *"man:secret-rotator(8)"* && $docs == *"man:rotator.toml(5)"* ]]
}
check "the unit's Documentation= names secret-rotator(8) and rotator.toml(5)" unit_documentation
guides_installed() {
    local guide missing=0
    for guide in Operations Consumers Fleet TrustBoundary Troubleshooting Architecture; do
        cx test -s "/usr/share/doc/secret-rotator/guides/$guide.md" || { say "missing guides/$guide.md"; missing=1; }
    done
    ((missing == 0)) && cx grep -q 'da9ab6a0ebd24686a2a819ee5446b07e' /usr/share/doc/secret-rotator/guides/Troubleshooting.md
}
check "the guides are text under /usr/share/doc/secret-rotator/guides/" guides_installed
bash_completion_loads() {
    local out rc=0
    out=$(cx bash -c 'source /usr/share/bash-completion/completions/secret-rotator && complete -p secret-rotator' 2>&1) || rc=$?
    say "complete -p: rc $rc: $out"
    [[ $rc -eq 0 && $out == "complete "*" secret-rotator" ]]
}
check "bash: source the installed completion; complete -p secret-rotator" bash_completion_loads
completions_installed() {
    cx test -s /usr/share/zsh/vendor-completions/_secret-rotator &&
        cx test -s /usr/share/fish/vendor_completions.d/secret-rotator.fish &&
        cx test -s /usr/share/bash-completion/completions/genauth-mock
}
check "zsh and fish completions at Debian's paths, genauth-mock's too" completions_installed
shipped_config_commented() {
    local settings
    cx dpkg-query -W -f '${Conffiles}\n' secret-rotator | grep -q '^ /etc/secret-rotator/rotator.toml ' ||
        { say "rotator.toml is not a conffile"; return 1; }
    settings=$(cx grep -c -v -E '^[[:space:]]*(#|$)' /etc/secret-rotator/rotator.toml) || true
    say "shipped rotator.toml: $(cx wc -l /etc/secret-rotator/rotator.toml | cut -d' ' -f1) lines, $settings uncommented"
    [[ $settings -eq 0 ]] && cx grep -q '^#\[genauth\]$' /etc/secret-rotator/rotator.toml
}
check "the shipped rotator.toml is a conffile with every setting commented out" shipped_config_commented
shipped_config_refused() {
    local rc=0 out err
    out=$(cx timeout 30 secret-rotator check-config 2>"$work/shipped-check.err") || rc=$?
    err=$(cat "$work/shipped-check.err")
    say "check-config on the shipped file: rc $rc; $(grep -c '' <<<"$err") stderr line(s): $err${out:+; stdout: $out}"
    [[ $rc -eq 78 && $err == *"no settings"* ]]
}
check "secret-rotator check-config on the shipped rotator.toml: exit 78, stderr says \"no settings\"" shipped_config_refused

step "systemd-analyze verify (inside the container, real paths)"
verify_clean() {
    local rc=0
    cx systemd-analyze verify /usr/lib/systemd/system/secret-rotator.service >"$work/verify.out" 2>"$work/verify.err" || rc=$?
    sed 's/^/   stderr: /' "$work/verify.err"
    [[ $rc -eq 0 && ! -s $work/verify.err ]]
}
check "systemd-analyze verify: rc 0, nothing on stderr" verify_clean

# --- 6. the mock API ---------------------------------------------------------------------------------
step "genauth-mock as a transient unit"
app_ids=(e2e0000000000000000000a1 e2e0000000000000000000a2 e2e0000000000000000000a3 e2e0000000000000000000a4)
# Eight more apps for the consumer section's `rotate --all` burst, each with its own consumer.
burst_ids=()
for index in 1 2 3 4 5 6 7 8; do burst_ids+=("e2e0000000000000000000b$index"); done
access_key_id=e2e-access-key-id
access_key_secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cx_write /etc/e2e/mock-seed.json 0600 <<EOF
{"userPoolId": "e2e00000000000000000pool",
 "accessKeys": [{"accessKeyId": "$access_key_id", "accessKeySecret": "$access_key_secret"}],
 "apps": [{"appId": "${app_ids[0]}", "appName": "billing"}, {"appId": "${app_ids[1]}", "appName": "reports"},
          {"appId": "${app_ids[2]}", "appName": "search"}, {"appId": "${app_ids[3]}", "appName": "ledger"}$(
    for index in "${!burst_ids[@]}"; do printf ',\n          {"appId": "%s", "appName": "burst%d"}' "${burst_ids[$index]}" $((index + 1)); done)],
 "tokenExpiresIn": 7200}
EOF
cx systemd-run --quiet --unit=genauth-mock -p Type=exec -p RuntimeDirectory=genauth-mock \
    /usr/bin/genauth-mock --host 127.0.0.1 --port 0 --port-file /run/genauth-mock/port \
    --seed /etc/e2e/mock-seed.json --save /run/genauth-mock/state.json
port_known() { cx test -s /run/genauth-mock/port; }
wait_for 20 port_known || { cx journalctl -u genauth-mock --no-pager | tail -20; setup_failed "genauth-mock did not report its port"; }
port=$(cx cat /run/genauth-mock/port)
mock_url=http://127.0.0.1:$port
say "genauth-mock listening on $mock_url (inside the container)"
mock_apps() { cx curl -sf "$mock_url/__admin/apps"; }
mock_secret() { mock_apps | jq -r --arg id "$1" '.apps[] | select(.appId == $id) | .secret'; }

# Every secret the mock hands out, collected from the host inside the container's network.
nsenter --target "$pid1" --net -- /usr/bin/python3 "$here/collect-mock-secrets.py" \
    "$mock_url/__admin/apps" "$work/mock-secrets.json" &
collector_pid=$!

# --- 7. configure -----------------------------------------------------------------------------------
step "configure: 3 apps, short intervals, an on_rotate hook, test drop-in"
cx mkdir -p /srv/e2e-out
cx chown secret-rotator:secret-readers /srv/e2e-out
cx chmod 0750 /srv/e2e-out
# billing's on_rotate hook: a script that records what the daemon handed it, exactly as
# execve(2) passed it (argv from /proc/$$/cmdline, the environment from /proc/$$/environ,
# NUL-separated), with its /proc status (user, no_new_privs, capabilities) and cgroup, into
# a directory only the drop-in's ReadWritePaths= makes writable. It never opens an output.
# The .env file comes last, by rename, so a complete record is one whose .env exists.
hook_dir=/srv/e2e-hook
hook_program=/usr/local/libexec/e2e-on-rotate
hook_argv=("$hook_program" "$hook_dir" "second argument")
cx install -d -m 0750 -o secret-rotator -g secret-rotator "$hook_dir"
cx install -d -m 0755 "${hook_program%/*}"
cx_write "$hook_program" 0755 <<'EOF'
#!/bin/sh
set -eu
record=$1/hook.$ROTATOR_APP_ID.$ROTATOR_VERSION.$$
cat /proc/$$/cmdline >"$record.argv"
cat /proc/$$/status >"$record.status"
cat /proc/$$/cgroup >"$record.cgroup"
cat /proc/$$/environ >"$record.env.tmp"
mv "$record.env.tmp" "$record.env"
EOF
printf '%s\n' "$access_key_secret" | cx_write /etc/secret-rotator/access-key-secret 0600
# The operator's drop-in of the README (ReadWritePaths= for an output outside the state
# directory) plus test-only settings: 1 s minimum interval, a short watchdog and restart.
cx mkdir -p /etc/systemd/system/secret-rotator.service.d
cx_write /etc/systemd/system/secret-rotator.service.d/e2e.conf 0644 <<'EOF'
[Service]
ReadWritePaths=/srv/e2e-out /srv/e2e-hook
Environment=SECRET_ROTATOR_MINIMUM_INTERVAL=1s
WatchdogSec=4s
RestartSec=1s
TimeoutStartSec=20s
TimeoutStopSec=20s
EOF
# The consumer section sets billing_interval, billing_extra, ledger_extra and extra_apps (TOML
# lines); every other caller leaves them empty.
billing_interval=3s billing_extra="" ledger_extra="" extra_apps=""
write_config() { # NUMBER-OF-APPS [EXTRA-DEFAULTS-LINE]
    cat <<EOF
# end-to-end test config
[genauth]
host = "$mock_url"
flavour = "genauth"
access_key_id = "$access_key_id"
access_key_secret_credential = "genauth-access-key-secret"
request_timeout = "5s"
requests_per_second = 50

[defaults]
interval = "3s"
mode = "0640"
group = "secret-readers"
retry = { initial = "200ms", max = "2s", multiplier = 2.0 }
${2:-}

[[app]]
id = "${app_ids[0]}"
name = "billing"
interval = "$billing_interval"
$billing_extra
on_rotate = ["${hook_argv[0]}", "${hook_argv[1]}", "${hook_argv[2]}"]

[[app]]
id = "${app_ids[1]}"
name = "reports"
interval = "4s"

  [[app.output]]
  format = "env"
  mode = "0600"

[[app]]
id = "${app_ids[2]}"
name = "search"
interval = "5s"
first_start = "rotate"

  [[app.output]]
  path = "/srv/e2e-out/search.json"
  format = "json"
  mode = "0640"
EOF
    if [[ $1 -ge 4 ]]; then
        cat <<EOF

[[app]]
id = "${app_ids[3]}"
name = "ledger"
interval = "3s"
first_start = "rotate"
$ledger_extra
EOF
    fi
    [[ -z $extra_apps ]] || printf '%s\n' "$extra_apps"
}
cx systemctl daemon-reload
# The key is in place, the config is still the shipped one: the unit must fail at once with
# 78 (no restart: RestartPreventExitStatus=78) and say why in the journal.
cursor_unconfigured=$(journal_cursor)
cx timeout 40 systemctl start "$unit" >"$work/unconfigured-start.log" 2>&1 || true
unconfigured_refused() {
    local result status message
    result=$(prop Result) status=$(prop ExecMainStatus)
    message=$(daemon_after "$cursor_unconfigured" | jq -r .MESSAGE | head -3)
    say "start with the shipped config: $(prop ActiveState), Result=$result ExecMainStatus=$status NRestarts=$(prop NRestarts); daemon said: ${message:-nothing}"
    if ! [[ $status -eq 78 && $(prop ActiveState) != active && $(prop NRestarts) -eq 0 && $message == *"no settings"* ]]; then
        sed 's/^/   systemctl start: /' "$work/unconfigured-start.log"
        cx journalctl --after-cursor="$cursor_unconfigured" --no-pager -q | tail -n 15 | sed 's/^/   /'
        return 1
    fi
}
check "systemctl start with the shipped rotator.toml: the daemon exits 78, not restarted, journal says \"no settings\"" unconfigured_refused
# Whatever the result, start the real test from a stopped unit with no failure recorded.
cx timeout 40 systemctl stop "$unit" >/dev/null 2>&1 || true
cx systemctl reset-failed "$unit" >/dev/null 2>&1 || true
write_config 3 | cx_write /etc/secret-rotator/rotator.toml 0644
cx systemctl daemon-reload
# check-config as systemd would run it: the credential in a directory of its own.
cx mkdir -p -m 0700 /run/e2e-credentials
cx ln -sf /etc/secret-rotator/access-key-secret /run/e2e-credentials/genauth-access-key-secret
if cx env SECRET_ROTATOR_MINIMUM_INTERVAL=1s CREDENTIALS_DIRECTORY=/run/e2e-credentials \
    secret-rotator check-config --config /etc/secret-rotator/rotator.toml >"$work/check-config.log" 2>&1; then
    say "check-config: valid"
else
    sed 's/^/   /' "$work/check-config.log"
    setup_failed "the test config is invalid"
fi

# Outputs: NAME PATH FORMAT MODE GROUP
outputs=(
    "billing /var/lib/secret-rotator/secrets/billing raw 640 ${app_ids[0]}"
    "reports /var/lib/secret-rotator/secrets/reports.env env 600 ${app_ids[1]}"
    "search /srv/e2e-out/search.json json 640 ${app_ids[2]}"
)
read_output() { # PATH FORMAT -> the secret in it
    case $2 in
    raw) cx cat "$1" ;;
    env) cx cat "$1" | sed -n 's/^GENAUTH_APP_SECRET="\(.*\)"$/\1/p' ;;
    json) cx cat "$1" | jq -r .secret ;;
    esac
}
# Every output holds the mock's current secret (one consistent snapshot of the mock).
outputs_match_mock() {
    local snapshot entry name path format mode app want got
    snapshot=$(mock_apps) || return 1
    for entry in "${outputs[@]}"; do
        read -r name path format mode app <<<"$entry"
        want=$(jq -r --arg id "$app" '.apps[] | select(.appId == $id) | .secret' <<<"$snapshot")
        got=$(read_output "$path" "$format" 2>/dev/null) || return 1
        [[ -n $want && $got == "$want" ]] || return 1
    done
}
rotated_at_least_once() {
    local snapshot app
    snapshot=$(mock_apps) || return 1
    for app in "${app_ids[@]:0:3}"; do
        [[ $(jq -r --arg id "$app" '.apps[] | select(.appId == $id) | .rotationCount' <<<"$snapshot") -ge 1 ]] || return 1
    done
}

# --- 8. start -------------------------------------------------------------------------------------
step "systemctl start (returns after READY=1)"
t0=$(date +%s.%N)
start_rc=0
cx systemctl start "$unit" || start_rc=$?
say "systemctl start: rc $start_rc after $(elapsed "$t0") s"
cx systemctl status "$unit" --no-pager -n 0 2>&1 | sed 's/^/   /' || true
check "systemctl start returns 0 (READY=1 received)" test "$start_rc" -eq 0
state_running() { [[ $(prop ActiveState) == active && $(prop SubState) == running ]]; }
check "ActiveState=active SubState=running" state_running
status_names_apps() {
    local text
    text=$(prop StatusText)
    say "StatusText=$text"
    [[ $text == *"3 apps"* && $text == *"next:"* ]] &&
        { [[ $text == *billing* ]] || [[ $text == *reports* ]] || [[ $text == *search* ]]; }
}
check "StatusText names the apps and the next rotation" status_names_apps

step "rotated files"
check "every app rotated at least once (mock rotationCount >= 1) within 30 s" wait_for 30 rotated_at_least_once
check "every output equals the mock's current secret" wait_for 15 outputs_match_mock
file_attributes_ok() {
    local entry name path format mode app ok=0 actual
    for entry in "${outputs[@]}"; do
        read -r name path format mode app <<<"$entry"
        actual=$(cx stat -c '%a %U %G' "$path" 2>/dev/null) || actual=missing
        say "$path: $actual (want $mode secret-rotator secret-readers)"
        [[ $actual == "$mode secret-rotator secret-readers" ]] || ok=1
    done
    return "$ok"
}
check "files have the configured mode, owner and group" file_attributes_ok
status_command() {
    local out rc=0 main_pid
    main_pid=$(prop MainPID)
    # As an operator runs it: a root shell, where the unit's credential does not exist.
    out=$(cx env SECRET_ROTATOR_MINIMUM_INTERVAL=1s secret-rotator status --config /etc/secret-rotator/rotator.toml 2>&1) || rc=$?
    sed 's/^/   /' <<<"$out"
    [[ $rc -eq 0 && $out == *"daemon running (PID $main_pid)"* && $out == *billing* && $out == *reports* && $out == *search* ]]
}
check "secret-rotator status from a root shell lists every app and names the running daemon's PID" status_command
rotation_count() { mock_apps | jq -r --arg id "$1" '.apps[] | select(.appId == $id) | .rotationCount'; }
rotate_via_daemon() {
    local out rc=0 before after
    before=$(rotation_count "${app_ids[2]}") || return 1
    # A root shell: cx's environment has no $CREDENTIALS_DIRECTORY, and the config names only
    # access_key_secret_credential, so only the daemon can call GenAuth.
    out=$(cx timeout 45 env SECRET_ROTATOR_MINIMUM_INTERVAL=1s secret-rotator rotate search --timeout 30s \
        --config /etc/secret-rotator/rotator.toml 2>&1) || rc=$?
    after=$(rotation_count "${app_ids[2]}") || return 1
    sed 's/^/   /' <<<"$out"
    say "rotate search: rc $rc; mock rotationCount of search $before -> $after"
    [[ $rc -eq 0 && $after -gt $before ]]
}
check "secret-rotator rotate search from a root shell without \$CREDENTIALS_DIRECTORY reaches the daemon (credential only): exit 0, the mock rotated search" rotate_via_daemon

step "on_rotate hook under the hardened unit"
hook_record=""
hook_version=""
# A version of billing that the daemon got from a refresh ("secret rotated and written ..."),
# then logged "hook done" for, and the hook's own record of running for that version: the
# version is only known once the rotation happened, so the hook ran after it.
hook_ran_after_rotation() {
    local entries version record
    entries=$(cx journalctl -o json --all --no-pager SYSLOG_IDENTIFIER=secret-rotator "APP_ID=${app_ids[0]}") || return 1
    for version in $(jq -r 'select(.MESSAGE_ID == "ecde1cc95949469ebba3ee667402c2c6" and (.MESSAGE | startswith("secret rotated "))) | .VERSION' <<<"$entries" | sort -n -u); do
        jq -e -s --arg v "$version" 'any(.[]; .MESSAGE == "hook done" and .VERSION == $v)' <<<"$entries" >/dev/null || continue
        # shellcheck disable=SC2016 # expanded by the inner sh
        record=$(cx sh -c 'for f in "$1"/hook."$2"."$3".*.env; do [ -e "$f" ] && echo "${f%.env}"; done; true' sh "$hook_dir" "${app_ids[0]}" "$version" | head -n 1)
        [[ -n $record ]] || continue
        hook_version=$version
        hook_record=$record
        return 0
    done
    return 1
}
check "billing's on_rotate hook ran for a rotated version (journal: rotated, then hook done; the hook's own record)" wait_for 30 hook_ran_after_rotation
hook_ran_as_told() {
    [[ -n $hook_record ]] || { say "no hook record to inspect"; return 1; }
    local environment argv status cgroup uid
    environment=$(cx cat "$hook_record.env" | jq -R -s -c 'split("\u0000") | map(select(. != "")) | sort') || return 1
    argv=$(cx cat "$hook_record.argv" | jq -R -s -c 'split("\u0000") | map(select(. != ""))') || return 1
    status=$(cx cat "$hook_record.status") || return 1
    cgroup=$(cx cat "$hook_record.cgroup") || return 1
    uid=$(cx id -u secret-rotator)
    say "hook record $hook_record (version $hook_version), owner $(cx stat -c %U "$hook_record.env")"
    say "  argv: $argv"
    say "  environment: $environment"
    say "  $(grep -E '^(Uid|NoNewPrivs|CapEff|CapBnd):' <<<"$status" | tr '\t\n' '  ')"
    say "  cgroup: $(grep -m1 'secret-rotator' <<<"$cgroup" || echo "not in the unit's cgroup")"
    # The hook's argv[0] is the script, run by its #! interpreter; the arguments pass unsplit.
    [[ $argv == "$(jq -c -n --args '["/bin/sh"] + $ARGS.positional' "${hook_argv[@]}")" ]] || { say "argv differs"; return 1; }
    # Exactly the documented variables, nothing of the daemon's environment (CREDENTIALS_DIRECTORY,
    # SECRET_ROTATOR_*, INVOCATION_ID, NOTIFY_SOCKET...).
    jq -e --arg id "${app_ids[0]}" --arg version "$hook_version" '
        (map(index("=") as $i | {key: .[:$i], value: .[$i + 1:]}) | from_entries) as $env |
        ($env | keys) == ["PATH", "ROTATOR_APP_ID", "ROTATOR_APP_NAME", "ROTATOR_OUTPUTS", "ROTATOR_VERSION"] and
        ($env.PATH | length) > 0 and $env.ROTATOR_APP_ID == $id and $env.ROTATOR_APP_NAME == "billing" and
        $env.ROTATOR_VERSION == $version and $env.ROTATOR_OUTPUTS == "/var/lib/secret-rotator/secrets/billing"' \
        <<<"$environment" >/dev/null || { say "environment differs"; return 1; }
    # Run inside the unit's sandbox: its user, no_new_privs, no capabilities, its cgroup.
    if ! { grep -q "^Uid:[[:space:]]*${uid}[[:space:]]" <<<"$status" && grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" &&
        grep -q '^CapEff:[[:space:]]*0*$' <<<"$status" && grep -q '^CapBnd:[[:space:]]*0*$' <<<"$status" &&
        grep -q '/system.slice/secret-rotator.service$' <<<"$cgroup"; }; then
        say "not run in the unit's sandbox"
        return 1
    fi
}
check "the hook got the documented argv and environment, ran as secret-rotator inside the unit's sandbox" hook_ran_as_told
hook_saw_no_secret() {
    local records
    # Every value the mock ever issued (app secrets, management tokens, access key secrets)
    # and the access key secret, searched for in every hook run's argv and environment.
    cx curl -sf "$mock_url/__admin/issued" >"$work/hook-issued.json" || { say "GET /__admin/issued failed"; return 1; }
    { jq -r '.tokens[], .secrets[], .accessKeySecrets[]' "$work/hook-issued.json" && printf '%s\n' "$access_key_secret"; } |
        sort -u >"$work/hook-secrets.txt" || return 1
    # shellcheck disable=SC2016 # expanded by the inner sh
    cx sh -c 'cat "$1"/hook.*.env "$1"/hook.*.argv' sh "$hook_dir" | tr '\0' '\n' >"$work/hook-records.txt" || return 1
    # shellcheck disable=SC2016 # expanded by the inner sh
    records=$(cx sh -c 'ls "$1"/hook.*.env | wc -l' sh "$hook_dir")
    say "$records hook runs recorded; $(jq '.secrets | length' "$work/hook-issued.json") app secrets issued so far"
    # Positive control: the same search finds what is there (the app id).
    grep -F -q "${app_ids[0]}" "$work/hook-records.txt" || { say "the records lack the app id: nothing real was searched"; return 1; }
    [[ $(jq '.secrets | length' "$work/hook-issued.json") -ge 2 ]] || { say "fewer than 2 app secrets issued"; return 1; }
    if grep -F -q -f "$work/hook-secrets.txt" "$work/hook-records.txt"; then
        say "a secret value is in a hook's argv or environment"
        return 1
    fi
}
check "no secret the mock issued and not the access key secret is in any hook run's argv or environment" hook_saw_no_secret

# --- 9. journal -----------------------------------------------------------------------------------
step "journal"
rotated_entries() {
    cx journalctl -o json --all --no-pager SYSLOG_IDENTIFIER=secret-rotator MESSAGE_ID=ecde1cc95949469ebba3ee667402c2c6
}
journal_fields_ok() {
    local entries
    entries=$(rotated_entries) || return 1
    [[ -n $entries ]] || { say "no rotation entries (MESSAGE_ID=ecde1cc9...)"; return 1; }
    jq -c '{MESSAGE, MESSAGE_ID, PRIORITY, APP_ID, APP_NAME, VERSION, _SYSTEMD_UNIT}' <<<"$entries" | sed -n '1,3s/^/   /p'
    jq -e -s 'all(.[]; .MESSAGE_ID and .PRIORITY and .APP_ID and .VERSION and ._SYSTEMD_UNIT == "secret-rotator.service")' \
        <<<"$entries" >/dev/null
}
check "journalctl -o json: rotation entries carry MESSAGE_ID, PRIORITY, APP_ID, VERSION" journal_fields_ok
catalog_shown() {
    cx journalctl -x --no-pager SYSLOG_IDENTIFIER=secret-rotator MESSAGE_ID=ecde1cc95949469ebba3ee667402c2c6 -n 1 \
        >"$work/journal-x.txt" 2>&1 || return 1
    sed -n '1,12s/^/   /p' "$work/journal-x.txt"
    grep -q 'Subject: Secret of application .* rotated' "$work/journal-x.txt" &&
        grep -q 'Defined-By: secret-rotator' "$work/journal-x.txt"
}
check "journalctl -x shows the catalog text" catalog_shown

# --- 10. reload -------------------------------------------------------------------------------------
step "systemctl reload with a 4th app"
# The property: around a reload the daemon sends RELOADING=1, then READY=1. The unit's state
# cannot prove it: ExecReload= alone keeps the unit in reloading/reload until /bin/kill exits,
# and PID 1 logs "Reloading...", "Reloaded ..." and the reload job's JOB_RESULT=done for that
# job whatever the daemon sends (in a trial with a bash daemon, "Reloaded" came before its
# RELOADING=1 had even arrived). The witness is PID 1 itself at debug level: it logs "Got
# notification message from PID N (...)" for each notification it accepts (NotifyAccess=main:
# only the MainPID's), and "Changed running -> reload" when a notification moves the unit.
main_pid=$(prop MainPID)
write_config 4 | cx_write /etc/secret-rotator/rotator.toml 0644
cx systemd-analyze log-level debug
cursor_reload=$(journal_cursor)
reload_rc=0
cx systemctl reload "$unit" || reload_rc=$?
reloaded_entry() { # CURSOR: the daemon logged "config reloaded" after it
    daemon_after "$1" >"$work/reloaded.json" &&
        jq -e -s 'any(.[]; .MESSAGE_ID == "f05dc8b467cb44beafc7c2283eed473c")' "$work/reloaded.json" >/dev/null
}
notified_reload() { # CURSOR: after it PID 1 accepted RELOADING=1 from the MainPID, and READY=1 from it later
    pid1_after "$1" >"$work/reload-pid1.json" &&
        jq -e -s --arg pid "$main_pid" '
            [.[] | .MESSAGE | select(startswith("secret-rotator.service: Got notification message from PID \($pid) ("))] as $n |
            ($n | map(test("[(, ]RELOADING=1[,)]")) | index(true)) as $r |
            $r != null and ($n[$r + 1:] | any(test("[(, ]READY=1[,)]")))' "$work/reload-pid1.json" >/dev/null
}
reload_done() { reloaded_entry "$cursor_reload" && notified_reload "$cursor_reload" && state_running; }
wait_for 15 reload_done || true
daemon_after "$cursor_reload" |
    jq -r '"\(.MESSAGE_ID // "-") \(.MESSAGE)"' | sed -n '1,8s/^/   /p'
show_notifications() { # CURSOR
    pid1_after "$1" | jq -r '.MESSAGE | select(test(": (Got notification message from PID [0-9]+ \\((?!WATCHDOG=1\\)$)|Changed |Installed new job .*/reload)"))' |
        sed -n '1,10s/^/   /p'
}
show_notifications "$cursor_reload"
reload_transition() {
    say "reload rc $reload_rc, reloaded entry: $(reloaded_entry "$cursor_reload" && echo yes || echo no)," \
        "RELOADING=1 then READY=1 from PID $main_pid: $(notified_reload "$cursor_reload" && echo yes || echo no)," \
        "state: $(prop ActiveState)/$(prop SubState), MainPID $main_pid -> $(prop MainPID)"
    [[ $reload_rc -eq 0 ]] && reload_done && [[ $(prop MainPID) == "$main_pid" ]]
}
check "systemctl reload: systemd accepted RELOADING=1 then READY=1 from the MainPID, config reloaded entry, running, same MainPID" reload_transition

step "SIGHUP alone (no ExecReload=, no reload job)"
# Without a reload job nothing but the daemon's RELOADING=1 can move the unit to reloading.
cursor_hup=$(journal_cursor)
cx kill -HUP "$main_pid"
moved_by_notification() {
    pid1_after "$cursor_hup" >"$work/hup-pid1.json" &&
        jq -e -s '
            [.[] | .MESSAGE] as $m |
            ($m | map(endswith(": Changed running -> reload")) | index(true)) as $a |
            $a != null and ($m[$a + 1:] | any(endswith(": Changed reload -> running"))) and
            all(.[]; .JOB_TYPE != "reload" and (.MESSAGE | contains("/reload as ") | not))' "$work/hup-pid1.json" >/dev/null
}
hup_done() { moved_by_notification && reloaded_entry "$cursor_hup" && notified_reload "$cursor_hup" && state_running; }
wait_for 15 hup_done || true
show_notifications "$cursor_hup"
hup_reload() {
    say "unit moved running -> reload -> running without a reload job: $(moved_by_notification && echo yes || echo no)," \
        "config reloaded entry: $(reloaded_entry "$cursor_hup" && echo yes || echo no), MainPID $main_pid -> $(prop MainPID)"
    hup_done && [[ $(prop MainPID) == "$main_pid" ]]
}
check "kill -HUP MainPID: systemd moved the unit running -> reload -> running on the daemon's RELOADING=1/READY=1 alone" hup_reload
cx systemd-analyze log-level info
outputs+=("ledger /var/lib/secret-rotator/secrets/ledger raw 640 ${app_ids[3]}")
ledger_rotated() {
    [[ $(mock_apps | jq -r --arg id "${app_ids[3]}" '.apps[] | select(.appId == $id) | .rotationCount') -ge 1 ]] &&
        [[ $(read_output /var/lib/secret-rotator/secrets/ledger raw 2>/dev/null) == "$(mock_secret "${app_ids[3]}")" ]]
}
check "the added app is rotated and written after the reload" wait_for 20 ledger_rotated
status_4_apps() { [[ $(prop StatusText) == *"4 apps"* ]]; }
check "StatusText counts 4 apps after the reload" wait_for 5 status_4_apps

step "systemctl reload with a broken config"
write_config 4 'intervall = "3s"' >"$work/broken.toml"
bad_line=$(grep -n '^intervall' "$work/broken.toml" | cut -d: -f1)
cx_write /etc/secret-rotator/rotator.toml 0644 <"$work/broken.toml"
cursor_broken=$(journal_cursor)
cx systemctl reload "$unit" || true
rejected_entry() {
    daemon_after "$cursor_broken" >"$work/rejected.json" &&
        jq -e -s 'any(.[]; .MESSAGE_ID == "264730db429e4ccfa2d697dd54988635")' "$work/rejected.json" >/dev/null
}
wait_for 15 rejected_entry || true
daemon_after "$cursor_broken" | jq -r .MESSAGE |
    sed -n '1,8s/^/   /p'
broken_kept_old() {
    rejected_entry &&
        [[ $(daemon_after "$cursor_broken" | jq -r .MESSAGE) == *"rotator.toml:$bad_line:"* ]] &&
        wait_for 10 state_running && [[ $(prop MainPID) == "$main_pid" ]] && status_4_apps
}
check "broken config: rejected with rotator.toml:$bad_line in the journal, old config keeps running" broken_kept_old

step "hostile configs against the release build: a clear error, never a crash"
# The debug build's tests cover the same files; a release build once survived 30,000 dotted
# parts and died only at 300,000, so both builds are checked.
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
def dotted(size):
    return "[" + ".".join(["a"] * (size // 2)) + "]\n"
files = {
    "dotted-60k": dotted(60_000), "dotted-600k": dotted(600_000),
    "10mb": "# " + "x" * (10 << 20) + "\n",
    "100k-apps": '[genauth]\naccess_key_id = "a"\n' + "[[app]]\n" * 100_000,
}
for name, text in files.items():
    with open(f"{work}/hostile-{name}.toml", "w") as out:
        out.write(text)
PY
hostile_refused() {
    local name rc out
    for name in dotted-60k dotted-600k 10mb 100k-apps; do
        cx_write "/tmp/hostile-$name.toml" 0600 <"$work/hostile-$name.toml"
        rc=0
        out=$(cx secret-rotator check-config --config "/tmp/hostile-$name.toml" 2>&1) || rc=$?
        say "   $name: rc $rc: $(head -1 <<<"$out" | cut -c1-150)"
        [[ $rc -eq 78 ]] || return 1
    done
}
check "release check-config: dotted keys of 60 KB and 600 KB, a 10 MB file, 100,000 apps: each exit 78 with a reason" hostile_refused

cursor_hostile=$(journal_cursor)
cx_write /etc/secret-rotator/rotator.toml 0644 <"$work/hostile-dotted-600k.toml"
cx systemctl reload "$unit" || true
hostile_rejected() {
    daemon_after "$cursor_hostile" | jq -e -s 'any(.[]; .MESSAGE_ID == "264730db429e4ccfa2d697dd54988635")' >/dev/null
}
hostile_kept_old() {
    wait_for 15 hostile_rejected && wait_for 10 state_running && [[ $(prop MainPID) == "$main_pid" ]] && status_4_apps
}
check "reload with 600 KB of dotted keys: rejected, same MainPID, old config keeps running" hostile_kept_old

# A config others can write defines the commands the daemon runs: refused like sudoers.
write_config 4 | cx_write /etc/secret-rotator/rotator.toml 0666
cursor_writable=$(journal_cursor)
cx systemctl reload "$unit" || true
writable_rejected() {
    daemon_after "$cursor_writable" | jq -r .MESSAGE | grep -q 'writable by group or others'
}
writable_kept_old() {
    wait_for 15 writable_rejected && wait_for 10 state_running && [[ $(prop MainPID) == "$main_pid" ]]
}
check "reload with a world-writable rotator.toml: refused (sudo's rule), daemon keeps running" writable_kept_old

# Put the good config back (without reloading): the watchdog restart below reads it.
write_config 4 | cx_write /etc/secret-rotator/rotator.toml 0644

# --- 11. watchdog -----------------------------------------------------------------------------------
step "watchdog: a hung daemon is aborted and restarted"
# A real hang, not a switch inside the daemon: SIGSTOP freezes every thread, so the WATCHDOG=1
# pings stop. systemd then sends WatchdogSignal= (SIGABRT) followed by SIGCONT, the daemon dies
# of the SIGABRT, and Restart=on-failure starts a new one RestartSec= later. The test drop-in's
# WatchdogSec=4s (the unit ships 30s) and RestartSec=1s keep this at about 5 s; the waits allow 30.
watchdog_usec=$(prop WatchdogUSec)
restarts_before=$(prop NRestarts)
pid_before=$(prop MainPID)
cursor_watchdog=$(journal_cursor)
t0=$(date +%s.%N)
cx kill -STOP "$pid_before"
hung() { [[ $(cx sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid_before/status" 2>/dev/null) == T ]]; }
watchdog_fired() {
    # PID 1's own record: the timeout, SIGABRT to the hung PID, its death by it, Result=watchdog.
    pid1_after "$cursor_watchdog" >"$work/watchdog.json" &&
        jq -e -s --arg pid "$pid_before" '
            any(.[]; .MESSAGE | test(": Watchdog timeout \\(limit [^)]*\\)!$")) and
            any(.[]; .MESSAGE | contains("Killing process \($pid) (") and endswith("with signal SIGABRT.")) and
            any(.[]; .MESSAGE | endswith("Main process exited, code=killed, status=6/ABRT")) and
            any(.[]; .UNIT_RESULT == "watchdog")' "$work/watchdog.json" >/dev/null
}
running_again() {
    local pid
    pid=$(prop MainPID)
    state_running && [[ $pid != 0 && $pid != "$pid_before" ]]
}
watchdog_restart() {
    local restarts_after pid_after
    [[ $watchdog_usec == 4s ]] || { say "WatchdogUSec=$watchdog_usec, not the drop-in's 4s: the waits below are not bounded by it"; return 1; }
    wait_for 5 hung || { say "PID $pid_before did not stop after SIGSTOP"; return 1; }
    say "PID $pid_before stopped (State T); waiting for the watchdog"
    wait_for 30 watchdog_fired || { say "no watchdog timeout/SIGABRT/Result=watchdog for PID $pid_before in PID 1's journal"; return 1; }
    wait_for 30 running_again || { say "not running again: $(prop ActiveState)/$(prop SubState), MainPID $(prop MainPID)"; return 1; }
    restarts_after=$(prop NRestarts)
    pid_after=$(prop MainPID)
    say "restarted after $(elapsed "$t0") s: NRestarts $restarts_before -> $restarts_after, MainPID $pid_before -> $pid_after"
    jq -r .MESSAGE "$work/watchdog.json" | grep -v 'Got notification message' | sed -n '1,8s/^/   /p'
    [[ $restarts_after -eq $((restarts_before + 1)) ]]
}
check "watchdog: SIGSTOPped daemon gets 'Watchdog timeout' + SIGABRT, Result=watchdog, NRestarts +1 exactly, new MainPID, active/running" watchdog_restart
restarted_once_in_sync() { outputs_match_mock && [[ $(prop NRestarts) -eq $((restarts_before + 1)) ]]; }
check "after the restart every output equals the mock's current secret, still exactly one restart" wait_for 20 restarted_once_in_sync

# --- 12. upgrade ----------------------------------------------------------------------------------
step "dpkg -i again (reinstall) and an upgrade, with the operator's config"
config_sum() { cx sha256sum /etc/secret-rotator/rotator.toml | cut -d' ' -f1; }
sum_before=$(config_sum)
pid_before=$(prop MainPID)
reinstall_ok() {
    if ! cx dpkg -i /run/e2e/debs/secret-rotator.deb >"$work/dpkg-reinstall.log" 2>&1; then
        sed 's/^/   /' "$work/dpkg-reinstall.log"
        return 1
    fi
    if ! cx dpkg -i /run/e2e/debs/secret-rotator-next.deb >"$work/dpkg-upgrade.log" 2>&1; then
        sed 's/^/   /' "$work/dpkg-upgrade.log"
        return 1
    fi
    sed 's/^/   /' "$work/dpkg-upgrade.log"
    [[ $(cx dpkg-query -W -f '${Version} ${Status}' secret-rotator) == "${deb_version}+e2e1 install ok installed" ]]
}
check "dpkg -i over itself and an upgrade to ${deb_version}+e2e1 succeed" reinstall_ok
config_kept() { [[ $(config_sum) == "$sum_before" ]] && ! cx test -e /etc/secret-rotator/rotator.toml.dpkg-new; }
check "operator-edited rotator.toml left alone on upgrade" config_kept
upgrade_restarted() { wait_for 20 state_running && [[ $(prop MainPID) != "$pid_before" ]]; }
check "upgrade restarted the running daemon (try-restart)" upgrade_restarted
check "outputs equal the mock's secrets after the upgrade" wait_for 20 outputs_match_mock

# --- 12b. consumers notified over D-Bus ------------------------------------------------------------
step "consumers notified over D-Bus (polkit rule, consumer units, outage per rotation)"
# The daemon, under the shipped unit, tells consumer units over the system bus; polkitd decides
# with the rule the unit's ExecStartPre=+/ExecReload=+ generates. The consumers are real
# services that load their secret file at start and on SIGHUP and call the mock's token
# endpoint every 10 ms with what they hold: the mock accepts only the current secret, so a
# consumer left on an old one is refused exactly as GenAuth would refuse it.
consumer_program=/usr/local/libexec/e2e-consumer
cx_write "$consumer_program" 0755 <<'EOF'
#!/usr/bin/python3
# An app's backend: loads its secret file at start and on SIGHUP and calls genauth-mock's
# POST /oidc/token (client_secret_post) every 10 ms with the secret it holds. It logs each
# load and each change between accepted and refused, with the CLOCK_REALTIME microsecond of
# the event (for a call: when it was sent); never the secret.
import http.client, os, signal, socket, time, urllib.parse

unit, app, path, port = (os.environ[key] for key in ("E2E_UNIT", "E2E_APP_ID", "E2E_SECRET_FILE", "E2E_MOCK_PORT"))
reload_asked = True


def on_hup(signum, frame):
    global reload_asked
    reload_asked = True


def now_us():
    return time.clock_gettime_ns(time.CLOCK_REALTIME) // 1000


def log(event, at):
    print(f"e2e-consumer unit={unit} event={event} t={at}", flush=True)


signal.signal(signal.SIGHUP, on_hup)
# Type=notify: ready only once SIGHUP is handled. As Type=exec the unit was active while the
# interpreter still started, and a reload then (ExecReload= sends SIGHUP) killed it, cleanly.
address = os.environ.get("NOTIFY_SOCKET", "")
if address:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect("\0" + address[1:] if address.startswith("@") else address)
        notify.sendall(b"READY=1")
connection, accepted_before, secret = None, None, ""
while True:
    if reload_asked:
        reload_asked = False
        with open(path, encoding="utf-8") as file:
            secret = file.read().strip()
        log("loaded", now_us())
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": app, "client_secret": secret})
    at = now_us()
    try:
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2)
        connection.request("POST", "/oidc/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        answer.read()
        accepted = answer.status == 200
    except (OSError, http.client.HTTPException):
        if connection is not None:
            connection.close()
        connection = None
        time.sleep(0.01)
        continue
    if accepted != accepted_before:
        accepted_before = accepted
        log("accepted" if accepted else "refused", at)
    time.sleep(0.01)
EOF
consumer_unit() { # DESCRIPTION ENVIRONMENT-FILE
    cat <<EOF
[Unit]
Description=$1
[Service]
Type=notify
DynamicUser=yes
SupplementaryGroups=secret-readers
EnvironmentFile=$2
Environment=E2E_UNIT=%n E2E_MOCK_PORT=$port
ExecStart=$consumer_program
ExecReload=/bin/kill -HUP \$MAINPID
EOF
}
# PID 1 reads the environment files as root: /etc/e2e may stay private.
printf 'E2E_APP_ID=%s\nE2E_SECRET_FILE=/var/lib/secret-rotator/secrets/billing\n' "${app_ids[0]}" |
    cx_write /etc/e2e/consumers/billing.env 0600
consumer_units=(billing.service)
declare -A consumer_of=(["${app_ids[0]}"]=billing.service)
extra_apps=""
for index in "${!burst_ids[@]}"; do
    name=burst$((index + 1))
    printf 'E2E_APP_ID=%s\nE2E_SECRET_FILE=/var/lib/secret-rotator/secrets/%s\n' "${burst_ids[$index]}" "$name" |
        cx_write "/etc/e2e/consumers/$name.env" 0600
    consumer_units+=("consumer@$name.service")
    consumer_of[${burst_ids[$index]}]=consumer@$name.service
    extra_apps+=$'\n'"[[app]]"$'\n'"id = \"${burst_ids[$index]}\""$'\n'"name = \"$name\""$'\n'"interval = \"10m\""
    extra_apps+=$'\n'"consumers = [\"consumer@$name.service\"]"$'\n'
done
consumer_unit "e2e consumer of billing's secret" /etc/e2e/consumers/billing.env | cx_write /etc/systemd/system/billing.service 0644
consumer_unit "e2e consumer of %i's secret" /etc/e2e/consumers/%i.env | cx_write /etc/systemd/system/consumer@.service 0644
# A consumer whose reload fails, and a unit no config names (the least-privilege checks).
cx_write /etc/systemd/system/e2e-broken-reload.service 0644 <<'EOF'
[Unit]
Description=e2e consumer whose reload always fails
[Service]
Type=exec
DynamicUser=yes
ExecStart=/bin/sleep infinity
ExecReload=/bin/false
EOF
cx_write /etc/systemd/system/e2e-unnamed.service 0644 <<'EOF'
[Unit]
Description=e2e unit that no config names
[Service]
Type=exec
DynamicUser=yes
ExecStart=/bin/sleep infinity
EOF
cx systemctl daemon-reload
cx systemctl start e2e-broken-reload.service e2e-unnamed.service || say "e2e-broken-reload and e2e-unnamed did not start"
# Every message on the system bus from here on, for the no-secret check below.
cx systemd-run --quiet --unit=e2e-dbus-monitor -p Type=exec -p StandardOutput=file:/run/e2e-dbus-monitor.txt \
    /usr/bin/busctl monitor --system || say "busctl monitor did not start"

billing_interval=1s
billing_extra='consumers = ["billing.service"]'
ledger_extra=$'consumers = ["e2e-broken-reload.service"]\nconsumer_grace = "2s"'
write_config 4 | cx_write /etc/secret-rotator/rotator.toml 0644
cursor_consumers=$(journal_cursor)
cx systemctl reload "$unit" || true
consumers_reloaded() { reloaded_entry "$cursor_consumers" && state_running; }
check "reload with consumers named: config reloaded, running" wait_for 20 consumers_reloaded

rule_file=/etc/polkit-1/rules.d/60-secret-rotator.rules
rule_installed() {
    local attributes
    attributes=$(cx stat -c '%a %U %G' "$rule_file" 2>/dev/null) || { say "no $rule_file"; return 1; }
    say "$rule_file: $attributes; $(cx grep -c '' "$rule_file") lines; grants:"
    cx sed -n 's/^ *\("[^"]*": \[.*\]\),\{0,1\}$/   \1/p' "$rule_file"
    [[ $attributes == "644 root root" ]] &&
        cx grep -q '"billing.service": \["reload-or-try-restart"\]' "$rule_file" &&
        cx grep -q '"consumer@burst8.service": \["reload-or-try-restart"\]' "$rule_file" &&
        cx grep -q '"e2e-broken-reload.service": \["reload-or-try-restart"\]' "$rule_file" &&
        ! cx grep -q 'e2e-unnamed' "$rule_file"
}
check "ExecReload=+ wrote $rule_file (0644 root:root) granting reload-or-try-restart on exactly the named units" rule_installed

burst_outputs_written() {
    local index
    for index in "${!burst_ids[@]}"; do cx test -s "/var/lib/secret-rotator/secrets/burst$((index + 1))" || return 1; done
}
wait_for 30 burst_outputs_written || say "the burst apps' outputs did not all appear within 30 s"
cx systemctl start "${consumer_units[@]}" || true
consumer_events() { # CURSOR -> the consumers' own lines as JSON
    journal_after "$1" | jq -c 'select((.MESSAGE | type) == "string" and (.MESSAGE | startswith("e2e-consumer ")))'
}
consumers_accepted() {
    local events unit
    events=$(consumer_events "$cursor_consumers") || return 1
    # The last call's outcome decides, not the last line: a consumer logs a call only when its
    # outcome changes, so a second reload onto the same secret (the daemon may tell a unit
    # again, e.g. one that was still starting) leaves `loaded` last while every call is accepted.
    for unit in "${consumer_units[@]}"; do
        jq -r .MESSAGE <<<"$events" | grep "unit=$unit event=" | grep -v 'event=loaded' | tail -n 1 |
            grep -q 'event=accepted' || return 1
    done
}
consumers_up() {
    local unit states="" events
    for unit in "${consumer_units[@]}"; do states+=" $(cx systemctl is-active "$unit" 2>/dev/null || true)"; done
    say "consumer units:$states"
    wait_for 30 consumers_accepted && return 0
    # Which consumer did not get there, and what it last said: the check's own evidence.
    events=$(consumer_events "$cursor_consumers" | jq -r .MESSAGE) || true
    for unit in "${consumer_units[@]}"; do
        grep "unit=$unit event=" <<<"$events" | grep -v 'event=loaded' | tail -n 1 | grep -q 'event=accepted' && continue
        say "$unit: $(cx systemctl is-active "$unit" 2>/dev/null || true); last lines:"
        grep "unit=$unit " <<<"$events" | tail -n 3 | sed 's/^/   /' || true
    done
    return 1
}
check "billing.service and 8 consumer@ instances (DynamicUser, SupplementaryGroups=secret-readers) read their outputs and are accepted by the mock" consumers_up

step "least privilege: what the daemon's user may ask systemd"
as_daemon_user() { # METHOD UNIT: busctl call as secret-rotator with no_new_privs, in a unit of its own
    local rc=0
    cx systemd-run --quiet --uid=secret-rotator -p NoNewPrivileges=yes --wait --pipe -- \
        busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager \
        "$1" ss "$2" replace </dev/null >"$work/busctl.out" 2>&1 || rc=$?
    say "as secret-rotator: $1 $2: rc $rc: $(tr '\n' ' ' <"$work/busctl.out")"
    return "$rc"
}
refused_as_daemon_user() { # refused by polkit, not failed for another reason
    ! as_daemon_user "$@" && grep -q -E 'Access denied|Interactive authentication required' "$work/busctl.out"
}
main_pid_of() { cx systemctl show -P MainPID "$1"; }
billing_pid=$(main_pid_of billing.service)
unnamed_pid=$(main_pid_of e2e-unnamed.service)
check "polkit grants secret-rotator ReloadOrTryRestartUnit billing.service (polkitd loaded the generated rule)" \
    as_daemon_user ReloadOrTryRestartUnit billing.service
cx journalctl -u polkit.service --no-pager -q -o cat | grep -i -E 'rules|error' | sed -n '1,6s/^/   polkitd: /p' || true
check "refused: RestartUnit of a unit the config does not name (e2e-unnamed.service)" \
    refused_as_daemon_user RestartUnit e2e-unnamed.service
check "refused: StartUnit billing.service (the rule grants only reload-or-try-restart)" \
    refused_as_daemon_user StartUnit billing.service
check "refused: StopUnit billing.service" refused_as_daemon_user StopUnit billing.service
check "refused: RestartUnit billing.service" refused_as_daemon_user RestartUnit billing.service
untouched() {
    say "MainPID billing.service $billing_pid -> $(main_pid_of billing.service), e2e-unnamed.service $unnamed_pid -> $(main_pid_of e2e-unnamed.service)"
    [[ $(main_pid_of billing.service) == "$billing_pid" && $(main_pid_of e2e-unnamed.service) == "$unnamed_pid" &&
        $(cx systemctl is-active billing.service) == active ]]
}
check "after the refused calls both units run with the same MainPID" untouched

step "rotations reaching the consumers: billing every second, three rotate --all bursts"
measure_started=$(cx date +%s%6N)
cursor_measure=$(journal_cursor)
billing_before=$(rotation_count "${app_ids[0]}")
bursts_ok=0
billing_rotated() { [[ $(rotation_count "${app_ids[0]}") -ge $1 ]]; }
for burst in 1 2 3; do
    rc=0
    out=$(cx timeout 60 env SECRET_ROTATOR_MINIMUM_INTERVAL=1s secret-rotator rotate --all --yes --timeout 45s \
        --config /etc/secret-rotator/rotator.toml 2>&1) || rc=$?
    say "rotate --all --yes ($burst): rc $rc; $(grep -c '' <<<"$out") line(s): $(tail -n 1 <<<"$out")"
    ((rc == 0)) && bursts_ok=$((bursts_ok + 1))
    wait_for 30 billing_rotated $((billing_before + 10 * burst)) || say "billing rotated fewer than $((10 * burst)) times"
done
measure_ended=$(cx date +%s%6N)
say "billing rotated $(($(rotation_count "${app_ids[0]}") - billing_before)) times in $(awk -v a="$measure_started" -v b="$measure_ended" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s"
check "three rotate --all --yes bursts over 12 apps: exit 0 each" test "$bursts_ok" -eq 3
# The rotations to account for: every new version of billing and of the burst apps written
# between the start and the end of the measurement, each with its consumer.
consumer_map=$(for app in "${!consumer_of[@]}"; do printf '%s\t%s\n' "$app" "${consumer_of[$app]}"; done |
    jq -R -s -c 'split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: .[1]}) | from_entries')
consumer_rotations() { # -> "APP_ID VERSION UNIT" of each rotation measured, and whether it was confirmed
    journal_after "$cursor_measure" >"$work/consumer-journal.json" || return 1
    jq -r -s --argjson units "$consumer_map" --arg until "$measure_ended" '
        [.[] | select(.SYSLOG_IDENTIFIER == "secret-rotator" and ($units[.APP_ID // ""] != null))] as $d |
        ($d | map(select(.EVENT == "consumer_confirmed")) | map("\(.APP_ID) \(.VERSION) \(.UNIT)")) as $confirmed |
        $d[] | select(.EVENT == "rotated" and ((.__REALTIME_TIMESTAMP | tonumber) <= ($until | tonumber))) |
        "\(.APP_ID) \(.VERSION) \($units[.APP_ID])" as $key |
        "\($key) \(if ($confirmed | any(.[]; . == $key)) then "confirmed" else "unconfirmed" end)"' \
        "$work/consumer-journal.json"
}
every_rotation_confirmed() {
    consumer_rotations >"$work/consumer-rotations.txt" || return 1
    [[ -s $work/consumer-rotations.txt ]] && ! grep -q ' unconfirmed$' "$work/consumer-rotations.txt"
}
consumers_reached() {
    local total billing burst
    wait_for 20 every_rotation_confirmed || true
    total=$(grep -c '' "$work/consumer-rotations.txt") || true
    billing=$(grep -c " billing.service " "$work/consumer-rotations.txt") || true
    burst=$(grep -c " consumer@" "$work/consumer-rotations.txt") || true
    say "$total rotations measured ($billing of billing, $burst of the burst apps); unconfirmed: $(grep -c ' unconfirmed$' "$work/consumer-rotations.txt" || true)"
    grep ' unconfirmed$' "$work/consumer-rotations.txt" | sed -n '1,5s/^/   /p'
    every_rotation_confirmed && ((billing >= 30 && burst >= 24))
}
check "every rotation (>= 30 of billing, 3 x 8 burst apps) has the daemon's consumer_confirmed for its version and unit" consumers_reached
# The consumer's own view: the outage per rotation and whether it reloaded for it.
python3 - "$work/consumer-journal.json" "$work/consumer-rotations.txt" >"$work/consumer-outage.txt" <<'PY' ||
import json, re, sys

rotation_times, events = {}, {}
with open(sys.argv[1], encoding="utf-8") as journal:
    for line in journal:
        entry = json.loads(line)
        message = entry.get("MESSAGE")
        if entry.get("SYSLOG_IDENTIFIER") == "secret-rotator" and entry.get("EVENT") == "rotated":
            rotation_times[(entry.get("APP_ID"), entry.get("VERSION"))] = int(entry["__REALTIME_TIMESTAMP"])
        elif isinstance(message, str) and message.startswith("e2e-consumer "):
            fields = dict(re.findall(r"(\w+)=(\S+)", message))
            events.setdefault(fields["unit"], []).append((int(fields["t"]), fields["event"]))
outages, unreached, refused_count = {"all": [], "burst": []}, [], 0
# An event within 0.5 s of the daemon's entry is this rotation's: the scheduler keeps one
# app's rotations >= 1 s apart, but an operator's rotate may follow a scheduled one within
# 0.2 s, so the refused call nearest to the entry is this rotation's, not the first in reach.
window = 500_000
with open(sys.argv[2], encoding="utf-8") as rotations:
    for line in rotations:
        app, version, unit, _ = line.split()
        at = rotation_times[(app, version)]
        mine = sorted(events.get(unit, []))
        refused = [t for t, event in mine if event == "refused" and abs(t - at) <= window]
        if refused:
            refused_at = min(refused, key=lambda t: abs(t - at))
            accepted = [t for t, event in mine if event == "accepted" and t > refused_at]
            loads = [t for t, event in mine if event == "loaded" and accepted and refused_at < t <= accepted[0]]
            if not loads:
                unreached.append(f"{unit} version {version} (refused, no reload before the next accepted call)")
                continue
            refused_count += 1
            outage = (accepted[0] - refused_at) / 1000
        else:
            # No call fell into the outage: the gap from the daemon's entry to the reload.
            loads = [t for t, event in mine if event == "loaded" and at - 50_000 <= t <= at + window]
            if not loads:
                unreached.append(f"{unit} version {version}")
                continue
            outage = max(0, loads[0] - at) / 1000
        outages["all"].append(outage)
        if unit.startswith("consumer@"):
            outages["burst"].append(outage)
for kind, figures in outages.items():
    figures.sort()
    def rank(p):
        return figures[min(len(figures) - 1, max(0, -(-len(figures) * p // 100) - 1))]
    if figures:
        print(f"outage_ms{'' if kind == 'all' else '_' + kind} rotations={len(figures)} refused_windows={refused_count if kind == 'all' else '-'} "
              f"p50={rank(50):.1f} p99={rank(99):.1f} max={figures[-1]:.1f}")
for item in unreached:
    print(f"unreached {item}")
PY
    say "the outage analysis failed"
sed 's/^/   /' "$work/consumer-outage.txt"
outage_line=$(grep '^outage_ms ' "$work/consumer-outage.txt" || true)
consumers_reloaded_each() {
    [[ -n $outage_line ]] && ! grep -q '^unreached ' "$work/consumer-outage.txt" &&
        [[ $(sed -n 's/.* rotations=\([0-9]*\) .*/\1/p' <<<"$outage_line") -eq $(grep -c '' "$work/consumer-rotations.txt") ]]
}
check "each consumer loaded its file for every measured rotation and was accepted again after it" consumers_reloaded_each
say "consumer outage per rotation (first refused call to the first accepted one; figures, not checked; target p50 <= 50 ms, p99 <= 250 ms): ${outage_line#outage_ms }"
say "of which the burst apps' consumers (8 told at once): $(sed -n 's/^outage_ms_burst //p' "$work/consumer-outage.txt")"
consumers_current() {
    local unit
    # The mock accepts only the current secret: a consumer whose last event is "accepted" holds it.
    consumer_events "$cursor_measure" >"$work/consumer-last.json" || return 1
    for unit in "${consumer_units[@]}"; do
        jq -r .MESSAGE "$work/consumer-last.json" | grep "unit=$unit event=" | grep -v 'event=loaded' | tail -n 1 |
            grep -q 'event=accepted' || { say "$unit's last call was not accepted"; return 1; }
    done
}
check "every consumer's last call is accepted: it holds the mock's current secret" wait_for 10 consumers_current

step "a consumer whose reload fails"
status_names_broken() {
    local rc=0
    cx env SECRET_ROTATOR_MINIMUM_INTERVAL=1s secret-rotator status --config /etc/secret-rotator/rotator.toml \
        >"$work/status-consumer.txt" 2>&1 || rc=$?
    [[ $rc -eq 5 ]] && grep -q 'e2e-broken-reload.service' "$work/status-consumer.txt"
}
broken_reported() {
    local rc=0
    # Bounded by the grace (2 s) plus ledger's interval (3 s), with room for a loaded machine.
    wait_for 15 status_names_broken || rc=1
    grep 'e2e-broken-reload' "$work/status-consumer.txt" | sed -n '1,3s/^/   /p'
    return "$rc"
}
check "secret-rotator status exits 5 and names e2e-broken-reload.service (ExecReload=/bin/false, consumer_grace 2s)" broken_reported
broken_in_journal() {
    daemon_after "$cursor_consumers" | jq -e -s '
        any(.[]; .EVENT == "consumer_failed" and .UNIT == "e2e-broken-reload.service")' >/dev/null
}
check "journal: EVENT=consumer_failed UNIT=e2e-broken-reload.service" wait_for 10 broken_in_journal
daemon_after "$cursor_consumers" | jq -r 'select(.EVENT == "consumer_failed") | .MESSAGE' | sed -n '1,2s/^/   /p'

step "no secret on the system bus"
cx systemctl stop e2e-dbus-monitor.service || true
cx cat /run/e2e-dbus-monitor.txt >"$work/dbus-monitor.txt" 2>/dev/null || true
no_secret_on_bus() {
    # Positive control: the monitor saw the daemon's own calls.
    grep -a -q 'ReloadOrTryRestartUnit' "$work/dbus-monitor.txt" && grep -a -q 'billing.service' "$work/dbus-monitor.txt" ||
        { say "the bus monitor did not record the daemon's calls: the search would find nothing"; return 1; }
    cx curl -sf "$mock_url/__admin/issued" >"$work/bus-issued.json" || { say "GET /__admin/issued failed"; return 1; }
    { jq -r '.apps[].secrets[]' "$work/mock-secrets.json" && jq -r '.tokens[], .secrets[], .accessKeySecrets[]' "$work/bus-issued.json" &&
        printf '%s\n' "$access_key_secret"; } | sort -u >"$work/bus-secrets.txt" || return 1
    say "$(wc -c <"$work/dbus-monitor.txt") bytes of bus messages ($(grep -a -c 'ReloadOrTryRestartUnit' "$work/dbus-monitor.txt") ReloadOrTryRestartUnit), $(wc -l <"$work/bus-secrets.txt") secret values searched"
    ! grep -a -F -q -f "$work/bus-secrets.txt" "$work/dbus-monitor.txt"
}
check "busctl monitor --system during the rotations: no secret the mock issued, no token, not the access key secret" no_secret_on_bus

# Back to the 4 apps without consumers, the consumers stopped, for the steps that follow.
cx systemctl stop "${consumer_units[@]}" e2e-broken-reload.service e2e-unnamed.service || true
billing_interval=3s billing_extra="" ledger_extra="" extra_apps=""
write_config 4 | cx_write /etc/secret-rotator/rotator.toml 0644
cursor_restore=$(journal_cursor)
cx systemctl reload "$unit" || true
restored() { reloaded_entry "$cursor_restore" && state_running; }
wait_for 20 restored || say "the daemon did not report the restored config"

# --- 13. stop ----------------------------------------------------------------------------------------
step "systemctl stop"
cx systemd-analyze log-level debug
cursor_stop=$(journal_cursor)
t0=$(date +%s.%N)
stop_rc=0
cx systemctl stop "$unit" || stop_rc=$?
stop_seconds=$(elapsed "$t0")
cx systemd-analyze log-level info
stop_clean() {
    local stopping
    stopping=$(pid1_after "$cursor_stop" | jq -r .MESSAGE |
        grep -c 'Got notification message .*STOPPING=1') || true
    say "stop: rc $stop_rc in $stop_seconds s, STOPPING=1 notifications $stopping," \
        "Result=$(prop Result) ExecMainCode=$(prop ExecMainCode) ExecMainStatus=$(prop ExecMainStatus)"
    [[ $stop_rc -eq 0 && $stopping -ge 1 && $(prop Result) == success && $(prop ExecMainStatus) == 0 &&
        $(prop ActiveState) == inactive ]] &&
        awk -v s="$stop_seconds" 'BEGIN { exit !(s < 20) }'
}
check "systemctl stop: STOPPING=1 sent, exit status 0, within TimeoutStopSec" stop_clean

# --- 14. no secret in the journal -------------------------------------------------------------------
step "no secret in the journal"
collector_alive=no
kill -0 "$collector_pid" 2>/dev/null && collector_alive=yes
kill "$collector_pid" 2>/dev/null
wait "$collector_pid" 2>/dev/null || true
collector_pid=""
final_apps=$(mock_apps)
no_secret_leaked() {
    local coverage
    # The collector's record is what this check looks for: a missing, empty or unreadable one
    # would make it look for nothing and pass.
    [[ $collector_alive == yes ]] || { say "the collector had exited before it was stopped: its record may be incomplete"; return 1; }
    [[ -s $work/mock-secrets.json ]] || { say "the collector's record $work/mock-secrets.json is missing or empty"; return 1; }
    # Complete history: rotationCount + 1 distinct secrets per app (seeded + one per rotation).
    coverage=$(jq -r --argjson final "$final_apps" '
        .apps as $seen | $final.apps[] |
        "\(.appId) \(.rotationCount + 1) \(($seen[.appId].secrets // []) | length)"' "$work/mock-secrets.json") ||
        { say "the collector's record cannot be read"; return 1; }
    [[ -n $coverage ]] || { say "the mock lists no apps"; return 1; }
    say "secrets per app (expected seen): $(tr '\n' ',' <<<"$coverage")"
    if awk '$2 != $3 { bad = 1 } END { exit !bad }' <<<"$coverage"; then
        say "the collector missed a secret: the leak check would be incomplete"
        return 1
    fi
    jq -r '.apps[].secrets[]' "$work/mock-secrets.json" >"$work/all-secrets.txt" || return 1
    printf '%s\n' "$access_key_secret" >>"$work/all-secrets.txt"
    # The mock's own list adds the management tokens (and repeats what the collector saw).
    cx curl -sf "$mock_url/__admin/issued" >"$work/mock-issued.json" || { say "GET /__admin/issued failed"; return 1; }
    jq -r '.tokens[], .secrets[], .accessKeySecrets[]' "$work/mock-issued.json" >>"$work/all-secrets.txt" || return 1
    say "the mock issued $(jq '.tokens | length' "$work/mock-issued.json") management tokens"
    [[ $(jq '.tokens | length' "$work/mock-issued.json") -ge 1 ]] || { say "no token issued: the token check saw nothing"; return 1; }
    sort -u -o "$work/all-secrets.txt" "$work/all-secrets.txt"
    say "looking for $(wc -l <"$work/all-secrets.txt") secret values in $(cx journalctl --no-pager -q | wc -l) journal entries"
    # Every field of every entry (export format is the full record), then the raw files.
    # To files first: `producer | grep -q` under pipefail fails when grep stops reading early.
    cx journalctl --all -o export --no-pager >"$work/journal.export" || { say "journalctl -o export failed"; return 1; }
    cx sh -c 'cat /run/log/journal/*/* /var/log/journal/*/* 2>/dev/null' >"$work/journal.files" || true
    say "journal: $(wc -c <"$work/journal.export") bytes exported, $(wc -c <"$work/journal.files") bytes of journal files"
    # Positive control: the same search finds a value the daemon does log (an app id) in both.
    if ! grep -a -F -q "${app_ids[0]}" "$work/journal.export" || ! grep -a -F -q "${app_ids[0]}" "$work/journal.files"; then
        say "the journal export or the journal files lack ${app_ids[0]}: the search would not find a leak either"
        return 1
    fi
    if grep -a -F -f "$work/all-secrets.txt" -q "$work/journal.export"; then
        say "a secret value is in the journal"
        return 1
    fi
    if grep -a -F -f "$work/all-secrets.txt" -q "$work/journal.files"; then
        say "a secret value is in a journal file"
        return 1
    fi
}
check "no app secret issued by the mock (all $(jq '[.apps[].secrets[]] | length' "$work/mock-secrets.json" 2>/dev/null || echo '?') of them), no management token and not the access key secret appears in the journal" no_secret_leaked

# --- 15. purge -----------------------------------------------------------------------------------------
step "dpkg --purge"
purge_clean() {
    cx dpkg --purge secret-rotator >"$work/dpkg-purge.log" 2>&1 || { sed 's/^/   /' "$work/dpkg-purge.log"; return 1; }
    sed 's/^/   /' "$work/dpkg-purge.log"
    local load leftovers
    load=$(cx systemctl show -P LoadState "$unit")
    leftovers=$(cx sh -c 'ls -d /usr/bin/secret-rotator /usr/lib/systemd/system/secret-rotator.service \
        /var/lib/secret-rotator /etc/secret-rotator/rotator.toml /usr/lib/systemd/catalog/secret-rotator.catalog \
        /run/secret-rotator 2>/dev/null' || true)
    say "LoadState=$load leftovers: ${leftovers:-none}; catalog entries: $(cx journalctl --list-catalog | grep -c ' secret-rotator: ' || true)"
    [[ $(cx dpkg-query -W -f '${Status}' secret-rotator 2>/dev/null || true) != *installed* ]] &&
        [[ $load == not-found && -z $leftovers ]] &&
        cx test -e /etc/secret-rotator/access-key-secret &&
        [[ $(cx journalctl --list-catalog) != *' secret-rotator: '* ]]
}
check "dpkg --purge removes binary, unit, state and config; leaves the operator's key file" purge_clean

# --- summary -------------------------------------------------------------------------------------------
step "summary"
printf '%s\n' "${results[@]}"
printf 'systemd-analyze security exposure: %s\n' "${exposure:-unknown}"
printf 'e2e duration: %s s, %d checks, %d failed\n' "$(elapsed "$started")" "${#results[@]}" "$failures"
[[ $failures -eq 0 ]] || exit 1
