#!/usr/bin/env bash
# Builds the Debian packages with dpkg-deb (no debhelper needed):
#   secret-rotator_VERSION_ARCH.deb       the daemon/CLI, unit, sysusers, tmpfiles, catalog,
#                                         the commented example config, man pages (1, 5, 8),
#                                         the guides, completions
#   secret-rotator-mock_VERSION_ARCH.deb  genauth-mock, the local GenAuth API for tests and demos
# The mock is a separate package because its admin API hands out secrets: production hosts
# install only secret-rotator. Both are native packages (version without a Debian revision)
# with a DEP-5 copyright file and changelog.gz, and pass `lintian --fail-on error,warning`.
#
# PACKAGERS: the Maintainer field defaults to a placeholder address,
#   "secret-rotator maintainers <secret-rotator@example.org>".
# Set DEB_MAINTAINER to the team that answers for the packages you distribute.
#
# Usage: packaging/build-deb.sh [OUT_DIR]          (default OUT_DIR: out/)
# Environment:
#   SECRET_ROTATOR_BIN_DIR  take secret-rotator and genauth-mock from this directory instead
#                           of building (must be a --static-swift-stdlib release build)
#   SCRATCH_PATH            SwiftPM scratch path of the release build (default .build-release;
#                           kept apart from the debug .build so neither invalidates the other)
#   DEB_VERSION             package version (default: the version in Version.swift)
#   DEB_MAINTAINER          "Name <address>" for the Maintainer field (see above)
#   SOURCE_DATE_EPOCH       date of the man pages and the changelog check (default: the last
#                           commit's time, else now)
#   MANUAL_SCRATCH_PATH, MANUAL_CONFIGURATION
#                           the build tree the generate-manual plugin reuses (step 4; default
#                           .build when it holds a debug build, else the plugin's tool runs on
#                           the release executables; "none": always the latter)
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

for tool in dpkg-deb dpkg-shlibdeps strip ldd gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y dpkg-dev binutils)"
done

default_maintainer="secret-rotator maintainers <secret-rotator@example.org>"
maintainer=${DEB_MAINTAINER:-$default_maintainer}
[[ $maintainer =~ ^[^\<\>]+\ \<[^@\<\>[:space:]]+@[^@\<\>[:space:]]+\.[^@\<\>[:space:]]+\>$ ]] ||
    die "DEB_MAINTAINER must look like 'Name <user@domain.tld>' (got '$maintainer')"
if [[ -z ${DEB_MAINTAINER:-} ]]; then
    printf 'build-deb: note: Maintainer is the placeholder "%s"; set DEB_MAINTAINER for packages you distribute\n' \
        "$maintainer" >&2
fi
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

version=${DEB_VERSION:-$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/SecretRotator/Version.swift)}
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "cannot determine a valid package version (got '$version')"
arch=$(dpkg --print-architecture)

# --- 1. binaries -------------------------------------------------------------------------
if [[ -n ${SECRET_ROTATOR_BIN_DIR:-} ]]; then
    bin_dir=$(cd "$SECRET_ROTATOR_BIN_DIR" && pwd)
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

# --- 2. copyright: every package linked into a binary is named in packaging/copyright -------
# SwiftPM records the objects of each executable in <bin>/<name>.product/Objects.LinkFileList.
# Each object directory <bin>/<module>.build names the module's sources (the file "sources"
# for Swift, the .d files for C), which lie either in this repository's Sources/ or in
# <scratch>/checkouts/<package>/. Only checked when the binaries come from a SwiftPM build
# tree (a copied directory of binaries has no such list).
copyright_files() { # every pattern of every Files: field (continuation lines included)
    awk '/^Files:/ { files = 1; sub(/^Files:/, ""); } /^[^ ]/ && !/^Files:/ { files = 0 }
        files { for (i = 1; i <= NF; i++) print $i }' packaging/copyright
}
module_origin() { # MODULE -> "ours", a checkout's name, or nothing when unknown
    local dir=$bin_dir/$1.build first d
    # Its first source file: the first line of <module>.build/sources (Swift), else the first
    # two lines of a C object's .d file ("dependencies: SOURCE \" or "dependencies: \" then
    # SOURCE; objects can be in subdirectories).
    if [[ -f $dir/sources ]]; then
        first=$(head -n 1 "$dir/sources")
    else
        d=$(find "$dir" -name '*.d' -print -quit 2>/dev/null)
        [[ -n $d ]] && first=$(sed -n '1,2p' "$d")
    fi
    if [[ $first =~ /checkouts/([^/]+)/ ]]; then
        echo "${BASH_REMATCH[1]}"
    elif [[ $first =~ /Sources/([^/]+)/ && -d Sources/${BASH_REMATCH[1]} ]]; then
        echo ours # this package's Sources/ (possibly another clone's, for SECRET_ROTATOR_BIN_DIR)
    fi
}
check_copyright() {
    local binary list module origin patterns missing=() packages=()
    patterns=$(copyright_files)
    for binary in secret-rotator genauth-mock; do
        list=$bin_dir/$binary.product/Objects.LinkFileList
        if [[ ! -f $list ]]; then
            printf '   %s: no %s; copyright not cross-checked\n' "$binary" "${list#"$bin_dir/"}"
            return 0
        fi
        for module in $(sed -n 's|.*/\([^/]*\)\.build/.*|\1|p' "$list" | sort -u); do
            origin=$(module_origin "$module")
            case $origin in
            ours) ;;
            "") missing+=("module $module of $binary: its sources were not found") ;;
            *)
                packages+=("$origin")
                grep -qxF ".build-release/checkouts/$origin/*" <<<"$patterns" ||
                    missing+=("$origin (module $module, in $binary)")
                ;;
            esac
        done
    done
    if ((${#missing[@]})); then
        printf '   not in packaging/copyright: %s\n' "${missing[@]}" >&2
        die "add a Files: paragraph (with its licence) to packaging/copyright for each package above"
    fi
    printf '   linked packages, each with a Files: paragraph in packaging/copyright: %s\n' \
        "$(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')"
}
step "copyright covers the linked packages"
check_copyright

# --- 3. dependencies from the binaries (dpkg-shlibdeps reads the shlibs/symbols files) ---
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

# --- 4. man pages: swift-argument-parser's generate-manual plugin --------------------------
# The plugin (`swift package generate-manual`) builds its tool generate-manual (with its own
# copy of ArgumentParser, the "-tool" modules), then asks SwiftPM to build every product of
# this package in the configuration it is given, then runs
#   generate-manual EXECUTABLE --output-directory <scratch>/plugins/GenerateManual/outputs/TARGET ARGS...
# on each executable that uses ArgumentParser; the tool reads `EXECUTABLE --experimental-dump-help`
# and writes mdoc. The page depends only on the command definitions, not on the build.
#   - With a debug build in .build (CI's `swift build --build-tests` made one just before), the
#     plugin runs as is with --configuration debug: its product build is a no-op there (same
#     parameters), so it costs the tool's build, about a minute the first time.
#   - Otherwise the plugin's own product build would be a third full build: `swift package` has
#     no --static-swift-stdlib, and that flag changes the Swift compile commands, so in the
#     release tree every Swift module would be recompiled (and the executables relinked with
#     the shared runtime, over the static ones). Then only the plugin's tool is built (the
#     plugin's --help path builds it and stops before its product build) and run exactly as the
#     plugin runs it, on the release executables being packaged.
# MANUAL_SCRATCH_PATH=DIR forces the plugin itself on the build tree DIR (MANUAL_CONFIGURATION,
# default debug); MANUAL_SCRATCH_PATH=none forces the tool on the release executables.
manual_scratch=${MANUAL_SCRATCH_PATH:-}
manual_configuration=${MANUAL_CONFIGURATION:-debug}
if [[ -z $manual_scratch && -x .build/debug/secret-rotator && -x .build/debug/genauth-mock ]]; then
    manual_scratch=.build
fi
[[ $manual_scratch == none ]] && manual_scratch=""
man_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
man_arguments=(--date "$man_date" --authors "$maintainer")
generate_manuals() {
    mkdir -p "$work/man"
    local name page
    if [[ -n $manual_scratch ]]; then
        printf '   the generate-manual plugin on %s (%s build)\n' "$manual_scratch" "$manual_configuration"
        local outputs=$manual_scratch/plugins/GenerateManual/outputs
        rm -rf "$outputs"
        swift package --scratch-path "$manual_scratch" -c "$manual_configuration" \
            generate-manual --configuration "$manual_configuration" "${man_arguments[@]}" 2>&1 |
            grep -v -E '^\[[0-9]+/[0-9]+\] ' | sed 's/^/   plugin: /'
        ((PIPESTATUS[0] == 0)) || die "swift package generate-manual failed"
        for name in secret-rotator genauth-mock; do
            page=$outputs/$name/$name.1
            [[ -s $page ]] || die "the generate-manual plugin wrote no $page"
            cp "$page" "$work/man/$name.1"
        done
    else
        # The tool goes to <release scratch>/<triple>/debug, apart from the release build.
        local scratch_dir tool
        scratch_dir=$(cd "$bin_dir/../.." && pwd)
        [[ -f $scratch_dir/workspace-state.json ]] ||
            die "$bin_dir is not in a SwiftPM build tree: set MANUAL_SCRATCH_PATH to one with a debug build"
        printf '   no debug build in .build: the plugin'"'"'s generate-manual tool on the release executables\n'
        swift package --scratch-path "$scratch_dir" -c debug generate-manual --help 2>&1 |
            grep -E 'error|warning: .*generate' | sed 's/^/   plugin: /' || true
        tool=$scratch_dir/$(basename "$(dirname "$bin_dir")")/debug/generate-manual-tool
        [[ -x $tool ]] || die "the generate-manual plugin did not build its tool ($tool)"
        for name in secret-rotator genauth-mock; do
            "$tool" "$bin_dir/$name" --output-directory "$work/man" "${man_arguments[@]}" ||
                die "generate-manual failed on $name"
            [[ -s $work/man/$name.1 ]] || die "generate-manual wrote no $name.1"
        done
    fi
}

# --- 5. stage and build one package -------------------------------------------------------
# Lines wrapped at 78 columns for lintian's extended-description-line-too-long.
install_docs() { # ROOT NAME: copyright, changelog.gz, README
    local root=$1 name=$2 doc=$1/usr/share/doc/$2
    install -d -m 0755 "$doc"
    install -m 0644 packaging/copyright "$doc/copyright"
    install -m 0644 README.md "$doc/README.md"
    # A native package: changelog.gz, from the committed Debian changelog; -n: no name or time
    # in the gzip header (reproducible).
    gzip -9n <"$work/changelog" >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
}
install_manual() { # ROOT NAME
    install -d -m 0755 "$1/usr/share/man/man1"
    # generate-manual copies a multi-paragraph abstract or discussion verbatim, blank lines
    # included; groff warns about each ("Empty input line", lintian's groff-message). An
    # mdoc paragraph break is .Pp.
    sed 's/^[[:space:]]*$/.Pp/' "$work/man/$2.1" | gzip -9n >"$1/usr/share/man/man1/$2.1.gz"
    chmod 0644 "$1/usr/share/man/man1/$2.1.gz"
}
install_completions() { # ROOT NAME: from the staged binary itself
    local root=$1 name=$2
    install -d -m 0755 "$root/usr/share/bash-completion/completions" \
        "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
    # bash-completion sources the file: no #! line (lintian's bash-completion-with-hashbang).
    "$root/usr/bin/$name" --generate-completion-script bash | sed '1{/^#!/d}' \
        >"$root/usr/share/bash-completion/completions/$name"
    "$root/usr/bin/$name" --generate-completion-script zsh >"$root/usr/share/zsh/vendor-completions/_$name"
    "$root/usr/bin/$name" --generate-completion-script fish >"$root/usr/share/fish/vendor_completions.d/$name.fish"
    local file
    for file in "$root/usr/share/bash-completion/completions/$name" "$root/usr/share/zsh/vendor-completions/_$name" \
        "$root/usr/share/fish/vendor_completions.d/$name.fish"; do
        [[ -s $file ]] || die "$name --generate-completion-script wrote nothing for ${file##*/}"
        chmod 0644 "$file"
    done
    bash -n "$root/usr/share/bash-completion/completions/$name" || die "the bash completion of $name does not parse"
}
install_overrides() { # ROOT NAME: packaging/lintian/NAME, when there is one
    [[ -f packaging/lintian/$2 ]] || return 0
    install -d -m 0755 "$1/usr/share/lintian/overrides"
    install -m 0644 "packaging/lintian/$2" "$1/usr/share/lintian/overrides/$2"
}

build_package() { # NAME DESCRIPTION-FILE EXTRA-DEPENDS BINARY...
    local name=$1 description=$2 extra=$3
    shift 3
    local root=$work/$name
    step "staging $name $version ($arch)"
    install -d -m 0755 "$root/DEBIAN" "$root/usr/bin"
    local binary staged=()
    for binary in "$@"; do
        # Symbols are not needed at run time; stripping halves a static Swift binary
        # (secret-rotator 0.1.0: 161 MB -> 82 MB).
        install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$binary"
        staged+=("$root/usr/bin/$binary")
        install_manual "$root" "$binary"
        install_completions "$root" "$binary"
    done
    install_docs "$root" "$name"
    install_overrides "$root" "$name"

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
        printf 'Maintainer: %s\n' "$maintainer"
        printf 'Installed-Size: %s\n' "$installed_size"
        printf 'Depends: %s\n' "$depends"
        # polkitd: consumers are reloaded over D-Bus as the daemon's own user; the rule the
        # unit generates (secret-rotator polkit-rule) is what lets it, and only polkitd reads it.
        [[ $name == secret-rotator ]] && printf 'Recommends: polkitd\n'
        printf 'Section: admin\n'
        printf 'Priority: optional\n'
        cat "$description"
    } >"$root/DEBIAN/control"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        >"$root/DEBIAN/md5sums"

    local deb=$out_dir/${name}_${version}_${arch}.deb
    step "dpkg-deb --build $deb"
    dpkg-deb --root-owner-group -Zgzip -z9 --build "$root" "$deb" >/dev/null
    dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Maintainer\|Depends\|Installed-Size\):/   \1:/p'
    printf '   %s (%s)\n' "$deb" "$(du -h "$deb" | cut -f1)"
}

# The changelog: packaging/debian/changelog, whose newest entry must be this version. A
# DEB_VERSION build (e.g. a snapshot) gets an entry of its own on top, dated SOURCE_DATE_EPOCH.
changelog_version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [[ $changelog_version == "$version" ]]; then
    cp packaging/debian/changelog "$work/changelog"
else
    [[ -n ${DEB_VERSION:-} ]] ||
        die "packaging/debian/changelog starts with $changelog_version but Version.swift says $version: add an entry"
    {
        printf 'secret-rotator (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Built with DEB_VERSION=%s from %s.\n\n' "$version" \
            "$(git describe --always --dirty 2>/dev/null || echo 'an unknown commit')"
        printf ' -- %s  %s\n\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
        cat packaging/debian/changelog
    } >"$work/changelog"
fi

step "man pages: swift-argument-parser's generate-manual plugin"
manual_started=$SECONDS
generate_manuals
printf '   secret-rotator.1 and genauth-mock.1 in %d s\n' $((SECONDS - manual_started))

# secret-rotator: the daemon and everything systemd needs.
root=$work/secret-rotator
install -d -m 0755 "$root/DEBIAN" "$root/etc/secret-rotator" \
    "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/usr/lib/systemd/catalog"
install -m 0644 packaging/secret-rotator.service "$root/usr/lib/systemd/system/secret-rotator.service"
install -m 0644 packaging/secret-rotator.sysusers "$root/usr/lib/sysusers.d/secret-rotator.conf"
install -m 0644 packaging/secret-rotator.tmpfiles "$root/usr/lib/tmpfiles.d/secret-rotator.conf"
install -m 0644 packaging/secret-rotator.catalog "$root/usr/lib/systemd/catalog/secret-rotator.catalog"

# The operator's manual: secret-rotator(8) and rotator.toml(5), written by hand in mdoc
# (DocumentationTests keeps them in step with the command tree and ConfigSchema), beside the
# generated secret-rotator(1); and the guides, the DocC articles as text, where an operator on
# the server looks (/usr/share/doc/secret-rotator/guides/). <doc:Name> links become Name.md.
install -d -m 0755 "$root/usr/share/man/man5" "$root/usr/share/man/man8" "$root/usr/share/doc/secret-rotator/guides"
gzip -9n <packaging/man/rotator.toml.5 >"$root/usr/share/man/man5/rotator.toml.5.gz"
gzip -9n <packaging/man/secret-rotator.8 >"$root/usr/share/man/man8/secret-rotator.8.gz"
chmod 0644 "$root/usr/share/man/man5/rotator.toml.5.gz" "$root/usr/share/man/man8/secret-rotator.8.gz"
docc=Sources/SecretRotator/SecretRotator.docc
for guide in Operations Consumers Fleet TrustBoundary Troubleshooting Architecture; do
    [[ -s $docc/$guide.md ]] || die "the guide $docc/$guide.md is missing"
    sed -E 's/<doc:([A-Za-z]+)(#[^>]*)?>/\1.md/g' "$docc/$guide.md" >"$root/usr/share/doc/secret-rotator/guides/$guide.md"
    chmod 0644 "$root/usr/share/doc/secret-rotator/guides/$guide.md"
done

# The conffile: config/rotator.toml (the annotated example the tests load) with every setting
# commented out, so that a fresh install holds no placeholder app ids the daemon would act on:
# it refuses to start with "no settings" until the operator has configured it. Settings become
# "#key = value" (the "#" right before the first character, after any indentation), prose
# stays "# text": removing that one "#" restores a setting. Checked both ways below.
conffile=$root/etc/secret-rotator/rotator.toml
cat >"$work/conffile-header" <<'HEADER'
# This file is the annotated example shipped by the secret-rotator package, with every
# setting commented out: the daemon and `secret-rotator check-config` refuse it ("no
# settings") until you configure it. "#key = value" lines are settings (delete the "#" to
# use one), "# text" lines are explanations. Then check it with
#   secret-rotator check-config --config /etc/secret-rotator/rotator.toml
#
HEADER
{
    cat "$work/conffile-header"
    sed -E 's/^([[:space:]]*)([^#[:space:]])/\1#\2/' config/rotator.toml
} >"$conffile"
chmod 0644 "$conffile"
if grep -v -E '^[[:space:]]*(#|$)' "$conffile" >&2; then
    die "the commented rotator.toml still has the setting lines above"
fi
if ! tail -n "+$(($(wc -l <"$work/conffile-header") + 1))" "$conffile" |
    sed -E 's/^([[:space:]]*)#([^#[:space:]])/\1\2/' | cmp -s - config/rotator.toml; then
    die "uncommenting the shipped rotator.toml does not give back config/rotator.toml"
fi
printf '   /etc/secret-rotator/rotator.toml: config/rotator.toml with %d settings commented out\n' \
    "$(grep -c -v -E '^[[:space:]]*(#|$)' config/rotator.toml)"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
cat >"$work/secret-rotator.description" <<'DESCRIPTION'
Description: rotates GenAuth application secrets and writes them to disk
 A systemd service that calls the GenAuth (Authing) V3 management API
 refresh-application-secret for each configured application on its
 interval, with retry, backoff and reconciliation of unknown outcomes, and
 writes every new secret atomically to files or a drop directory
 (/var/lib/secret-rotator/secrets) readable by the group secret-readers.
 .
 It reports to systemd (Type=notify, watchdog) and journald (message
 catalog). The service is installed but not enabled: configure
 /etc/secret-rotator/rotator.toml first.
DESCRIPTION
# systemd: the unit, and systemd-sysusers/systemd-tmpfiles/journalctl in postinst;
# init-system-helpers: deb-systemd-helper and deb-systemd-invoke in the maintainer scripts.
build_package secret-rotator "$work/secret-rotator.description" "init-system-helpers (>= 1.54~), systemd" secret-rotator

cat >"$work/mock.description" <<'DESCRIPTION'
Description: local mock of the GenAuth V3 management API for tests and demos
 genauth-mock serves the GenAuth/Authing V3 management endpoints used by
 secret-rotator and the official SDKs on 127.0.0.1, with fault injection
 and an admin API that exposes the secrets. Never install it on production
 hosts.
DESCRIPTION
build_package secret-rotator-mock "$work/mock.description" "" genauth-mock

step "done: $out_dir/secret-rotator_${version}_${arch}.deb $out_dir/secret-rotator-mock_${version}_${arch}.deb"
if command -v lintian >/dev/null; then
    printf '   check with: lintian --fail-on error,warning %s %s\n' \
        "$out_dir/secret-rotator_${version}_${arch}.deb" "$out_dir/secret-rotator-mock_${version}_${arch}.deb"
fi
