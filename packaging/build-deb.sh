#!/usr/bin/env bash
# Builds the Debian packages with dpkg-deb (no debhelper needed):
#   secret-rotator_VERSION_ARCH.deb       the daemon/CLI, unit, sysusers, tmpfiles, catalog, config
#   secret-rotator-mock_VERSION_ARCH.deb  genauth-mock, the local GenAuth API for tests and demos
# The mock is a separate package because its admin API hands out secrets: production hosts
# install only secret-rotator.
#
# Usage: packaging/build-deb.sh [OUT_DIR]          (default OUT_DIR: out/)
# Environment:
#   SECRET_ROTATOR_BIN_DIR  take secret-rotator and genauth-mock from this directory instead
#                           of building (must be a --static-swift-stdlib release build)
#   SCRATCH_PATH            SwiftPM scratch path of the release build (default .build-release;
#                           kept apart from the debug .build so neither invalidates the other)
#   DEB_VERSION             package version (default: the version in Version.swift)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH="/opt/swift/usr/bin:$PATH"

out_dir=${1:-out}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
scratch=${SCRATCH_PATH:-.build-release}

step() { printf '== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
die() { printf 'build-deb: error: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps strip ldd; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y dpkg-dev binutils)"
done

version=${DEB_VERSION:-$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/SecretRotator/Version.swift)}
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "cannot determine a valid package version (got '$version')"
arch=$(dpkg --print-architecture)

# --- 1. binaries -------------------------------------------------------------------------
if [[ -n ${SECRET_ROTATOR_BIN_DIR:-} ]]; then
    bin_dir=$SECRET_ROTATOR_BIN_DIR
    step "using prebuilt binaries from $bin_dir"
else
    step "swift build -c release --static-swift-stdlib --scratch-path $scratch (about 10 min from scratch on 2 cores)"
    # SwiftPM prints one line per compile step: progress for free.
    swift build -c release --static-swift-stdlib --scratch-path "$scratch"
    bin_dir=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)
fi
for binary in secret-rotator genauth-mock; do
    [[ -x $bin_dir/$binary ]] || die "$bin_dir/$binary is missing"
    # A static Swift stdlib means no libswiftCore.so: the toolchain is not needed at run time.
    if ldd "$bin_dir/$binary" | grep -q 'libswift'; then
        die "$binary links the Swift runtime dynamically; build with --static-swift-stdlib"
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/build-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- 2. dependencies from the binaries (dpkg-shlibdeps reads the shlibs/symbols files) ---
# Prints "libc6 (>= 2.34), ..." for the given binaries.
shlib_depends() {
    local dir=$work/shlibdeps
    mkdir -p "$dir/debian"
    printf 'Source: secret-rotator\n\nPackage: secret-rotator\nArchitecture: any\n' >"$dir/debian/control"
    (cd "$dir" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}
# The packages behind `ldd`, to cross-check dpkg-shlibdeps.
ldd_packages() {
    ldd "$1" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
        dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null
    done | cut -d: -f1 | sort -u | tr '\n' ' '
}

# --- 3. stage and build one package -------------------------------------------------------
build_package() { # NAME DESCRIPTION-FILE EXTRA-DEPENDS BINARY...
    local name=$1 description=$2 extra=$3
    shift 3
    local root=$work/$name
    step "staging $name $version ($arch)"
    install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/$name"
    local binary staged=()
    for binary in "$@"; do
        # Symbols are not needed at run time; stripping halves a static Swift binary
        # (secret-rotator 0.1.0: 161 MB -> 82 MB).
        install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
        strip --strip-unneeded "$root/usr/bin/$binary"
        staged+=("$root/usr/bin/$binary")
    done
    install -m 0644 README.md "$root/usr/share/doc/$name/README.md"

    local depends
    depends=$(shlib_depends "${staged[@]}")
    [[ -n $depends ]] || die "dpkg-shlibdeps found no dependencies for $name"
    printf '   shared-library dependencies (dpkg-shlibdeps): %s\n' "$depends"
    for binary in "${staged[@]}"; do
        printf '   ldd %s -> packages: %s\n' "${binary##*/}" "$(ldd_packages "$binary")"
    done
    [[ -n $extra ]] && depends="$depends, $extra"

    local installed_size
    installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    {
        printf 'Package: %s\n' "$name"
        printf 'Version: %s\n' "$version"
        printf 'Architecture: %s\n' "$arch"
        printf 'Maintainer: secret-rotator maintainers <secret-rotator@localhost>\n'
        printf 'Installed-Size: %s\n' "$installed_size"
        printf 'Depends: %s\n' "$depends"
        printf 'Section: admin\n'
        printf 'Priority: optional\n'
        cat "$description"
    } >"$root/DEBIAN/control"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        >"$root/DEBIAN/md5sums"

    local deb=$out_dir/${name}_${version}_${arch}.deb
    step "dpkg-deb --build $deb"
    dpkg-deb --root-owner-group -Zgzip -z9 --build "$root" "$deb" >/dev/null
    dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/   \1:/p'
    printf '   %s (%s)\n' "$deb" "$(du -h "$deb" | cut -f1)"
}

# secret-rotator: the daemon and everything systemd needs.
root=$work/secret-rotator
install -d -m 0755 "$root/DEBIAN" "$root/etc/secret-rotator" \
    "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/usr/lib/systemd/catalog"
install -m 0644 packaging/secret-rotator.service "$root/usr/lib/systemd/system/secret-rotator.service"
install -m 0644 packaging/secret-rotator.sysusers "$root/usr/lib/sysusers.d/secret-rotator.conf"
install -m 0644 packaging/secret-rotator.tmpfiles "$root/usr/lib/tmpfiles.d/secret-rotator.conf"
install -m 0644 packaging/secret-rotator.catalog "$root/usr/lib/systemd/catalog/secret-rotator.catalog"
# The annotated example is the default config; a conffile, so an operator's edits survive upgrades.
install -m 0644 config/rotator.toml "$root/etc/secret-rotator/rotator.toml"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
cat >"$work/secret-rotator.description" <<'EOF'
Description: rotates GenAuth application secrets and writes them atomically to disk
 A systemd service that calls the GenAuth (Authing) V3 management API
 refresh-application-secret for each configured application on its interval,
 with retry, backoff and reconciliation of unknown outcomes, and writes every new
 secret atomically to files or a drop directory (/var/lib/secret-rotator/secrets)
 readable by the group secret-readers. Reports to systemd (Type=notify, watchdog)
 and journald (message catalog). The service is installed but not enabled.
EOF
# systemd: the unit, and systemd-sysusers/systemd-tmpfiles/journalctl in postinst.
build_package secret-rotator "$work/secret-rotator.description" "systemd" secret-rotator

cat >"$work/mock.description" <<'EOF'
Description: local mock of the GenAuth V3 management API (tests and demos)
 genauth-mock serves the GenAuth/Authing V3 management endpoints used by
 secret-rotator and the official SDKs on 127.0.0.1, with fault injection and an
 admin API that exposes the secrets. Never install it on production hosts.
EOF
build_package secret-rotator-mock "$work/mock.description" "" genauth-mock

step "done: $out_dir/secret-rotator_${version}_${arch}.deb $out_dir/secret-rotator-mock_${version}_${arch}.deb"
