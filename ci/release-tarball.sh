#!/usr/bin/env bash
# The release tarball Buildroot downloads (boards/buildroot/package/varta), and its hash.
#
#   ci/release-tarball.sh [--ref REV] [--out DIR]   build varta-<version>.tar.gz, print its sha256
#   ci/release-tarball.sh --write-hash              rewrite boards/buildroot/.../varta.hash
#   ci/release-tarball.sh --check                   exit 1 unless varta.hash matches
#
# varta-<version>/ holds the committed tree at REV (git archive; the working tree is not
# used) without boards/buildroot, plus VENDOR/ (`cargo vendor --locked`) and a
# .cargo/config.toml pointing cargo at it. Why vendored: Buildroot checks a cargo package's
# hash *after* its download post-process (support/download/cargo-post-process), which
# vendors and repacks any tarball without a top-level VENDOR/ directory, so the hash of a
# plain `git archive` would never be the one Buildroot checks; a tarball that already has
# VENDOR/ is left as it is. boards/buildroot is left out because it holds the hash of this
# very tarball (a tarball cannot contain its own hash).
#
# Reproducible: files only, sorted by name, owner 0:0, modes normalised (0644/0755), mtime =
# author date of the last commit that touched the packaged files (unchanged by amending or
# rebasing), POSIX tar without pid-dependent header names, gzip -n. Same tree + same
# Cargo.lock + same cargo (its vendor layout) + same GNU tar and gzip = same bytes.
#
# Which commit --check and --write-hash use: the tag v<version> if it exists (the release is
# cut: the hash describes that release, whatever HEAD is now), else HEAD (before the tag:
# the hash describes the tree as committed, so regenerate it after every change to the
# packaged files). <version> is [workspace.package] version in Cargo.toml, and --check first
# requires VARTA_VERSION in varta.mk to be the same.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

PKG_DIR=boards/buildroot/package/varta
MK=$PKG_DIR/varta.mk
HASH_FILE=$PKG_DIR/varta.hash
EXCLUDE=boards/buildroot

die() {
    echo "release-tarball: $*" >&2
    exit 1
}

usage() {
    sed -n '4,6s/^#   //p' "$0"
    exit "${1:-0}"
}

mode=build
ref=
out=target/release-tarball
while [ $# -gt 0 ]; do
    case $1 in
    --check) mode="check" ;;
    --write-hash) mode="write" ;;
    --ref)
        [ $# -ge 2 ] || usage 2
        ref=$2
        shift
        ;;
    --out)
        [ $# -ge 2 ] || usage 2
        out=$2
        shift
        ;;
    -h | --help) usage 0 ;;
    *) usage 2 ;;
    esac
    shift
done

# [workspace.package] version of the Cargo.toml at a commit.
cargo_version() {
    git show "$1:Cargo.toml" | awk '
        /^\[/ { in_pkg = ($0 == "[workspace.package]") }
        in_pkg && /^version[ \t]*=/ { gsub(/.*=[ \t]*"|".*/, ""); print; exit }'
}

# A plain `VAR = value` assignment of varta.mk (first one).
mk_var() {
    awk -v v="$1" '$1 == v && $2 == "=" { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$MK"
}

# The commit --check and --write-hash describe: the release tag if it exists, else HEAD.
release_ref() {
    local version=$1
    if git rev-parse -q --verify "refs/tags/v$version^{commit}" >/dev/null; then
        echo "v$version"
    else
        echo HEAD
    fi
}

# build_tarball REV DIR: writes DIR/varta-<version>.tar.gz; sets tarball, sha, cargo_used.
build_tarball() {
    local rev=$1 dir=$2 commit version name epoch tmp
    commit=$(git rev-parse --verify "$rev^{commit}") || die "no commit '$rev'"
    version=$(cargo_version "$commit")
    [ -n "$version" ] || die "no [workspace.package] version in $rev:Cargo.toml"
    name=varta-$version
    epoch=$(git log -1 --format=%at "$commit" -- . ":(exclude)$EXCLUDE")
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064  # expand now: tmp is local
    trap "rm -rf '$tmp'" EXIT

    git archive --format=tar --prefix="$name/" "$commit" -- . ":(exclude)$EXCLUDE" |
        tar -x -C "$tmp"
    mkdir -p "$tmp/$name/.cargo"
    # cargo vendor prints the source replacement for .cargo/config.toml on stdout (not with
    # --quiet), its progress on stderr.
    if ! (cd "$tmp/$name" && cargo vendor --locked VENDOR >.cargo/config.toml 2>"$tmp/vendor.log"); then
        cat "$tmp/vendor.log" >&2
        die "cargo vendor failed (needs crates.io or the crates in the local cargo cache)"
    fi
    grep -q 'directory = "VENDOR"' "$tmp/$name/.cargo/config.toml" ||
        die "unexpected cargo vendor output in .cargo/config.toml"
    cargo_used=$(cargo --version | awk '{print $2}')

    chmod -R u+rwX,go+rX,go-w "$tmp/$name"
    (cd "$tmp" && find "$name" ! -type d -print0 | LC_ALL=C sort -z >"$tmp/files")
    mkdir -p "$dir"
    tarball=$dir/$name.tar.gz
    tar -C "$tmp" -c -f - --null --no-recursion -T "$tmp/files" \
        --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
        --mtime="@$epoch" --owner=0 --group=0 --numeric-owner |
        gzip -9 -n >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    sha=$(sha256sum "$tarball" | awk '{print $1}')
    built_commit=$commit
    rm -rf "$tmp"
    trap - EXIT
}

# License files: every LICENSE*/COPYING* at the top of the tree must be in
# VARTA_LICENSE_FILES (and so in the hash file); prints "sha256  <hex>  <file>" lines.
license_lines() {
    local commit=$1 f listed
    listed=" $(mk_var VARTA_LICENSE_FILES) "
    while IFS= read -r f; do
        case $listed in
        *" $f "*) ;;
        *) die "$f is in the tree but not in VARTA_LICENSE_FILES ($MK)" ;;
        esac
    done < <(git ls-tree --name-only "$commit" | grep -E '^(LICEN[CS]E|COPYING)' || true)
    for f in $listed; do
        git cat-file -e "$commit:$f" 2>/dev/null ||
            die "VARTA_LICENSE_FILES names $f, which is not in the tree at $commit"
        printf 'sha256  %s  %s\n' "$(git show "$commit:$f" | sha256sum | awk '{print $1}')" "$f"
    done
}

warn_dirty() {
    if [ -n "$(git status --porcelain -- . ":(exclude)$EXCLUDE")" ]; then
        echo "note: uncommitted changes are not in the tarball (it is made from $1)" >&2
    fi
}

case $mode in
build)
    ref=${ref:-HEAD}
    warn_dirty "$ref"
    build_tarball "$ref" "$out"
    echo "$tarball ($(git rev-parse --short "$built_commit"), cargo $cargo_used)"
    printf 'sha256  %s  %s\n' "$sha" "$(basename "$tarball")"
    ;;
write)
    [ -z "$ref" ] || die "--write-hash uses the release tag or HEAD, not --ref"
    version=$(cargo_version HEAD)
    ref=$(release_ref "$version")
    warn_dirty "$ref"
    build_tarball "$ref" "$out"
    lic=$(license_lines "$built_commit")
    {
        echo "# Locally calculated by ci/release-tarball.sh --write-hash: git archive of $ref"
        echo "# ($(git rev-parse --short "$built_commit")) without $EXCLUDE, + VENDOR/ from cargo $cargo_used vendor --locked."
        echo "# Buildroot leaves a tarball with VENDOR/ as it is, so this is the hash it checks."
        printf 'sha256  %s  %s\n' "$sha" "$(basename "$tarball")"
        if [ -n "$lic" ]; then
            echo "# License files"
            echo "$lic"
        else
            echo "# No license file in the tree yet (VARTA_LICENSE_FILES is empty): add"
            echo "# LICENSE-MIT/LICENSE-APACHE, list them there and run --write-hash again."
        fi
    } >"$HASH_FILE"
    echo "wrote $HASH_FILE for $(basename "$tarball") ($ref)"
    printf 'sha256  %s  %s\n' "$sha" "$(basename "$tarball")"
    ;;
check)
    [ -z "$ref" ] || die "--check uses the release tag or HEAD, not --ref"
    for f in "$MK" "$HASH_FILE"; do
        [ -f "$f" ] || die "missing $f"
    done
    version=$(cargo_version HEAD)
    mk_version=$(mk_var VARTA_VERSION)
    if [ "$mk_version" != "$version" ]; then
        die "VARTA_VERSION in $MK is '$mk_version' but Cargo.toml's version is '$version':" \
            "bump VARTA_VERSION, then run ci/release-tarball.sh --write-hash"
    fi
    name=varta-$version.tar.gz
    recorded=$(awk -v f="$name" '$1 == "sha256" && $3 == f { print $2; exit }' "$HASH_FILE")
    if [ -z "$recorded" ]; then
        die "$HASH_FILE has no sha256 line for $name: run ci/release-tarball.sh --write-hash"
    fi
    ref=$(release_ref "$version")
    warn_dirty "$ref"
    build_tarball "$ref" "$out"
    # Before the comparison, outside a pipe: a license problem must stop the script.
    lic=$(license_lines "$built_commit")
    status=0
    if [ "$recorded" != "$sha" ]; then
        recorded_cargo=$(sed -n 's/.*from cargo \([^ ]*\) vendor.*/\1/p' "$HASH_FILE")
        echo "release-tarball: $name from $ref ($(git rev-parse --short "$built_commit")) has sha256 $sha," >&2
        echo "  but $HASH_FILE records $recorded." >&2
        if [ -n "$recorded_cargo" ] && [ "$recorded_cargo" != "$cargo_used" ]; then
            echo "  (the hash was made with cargo $recorded_cargo, this is cargo $cargo_used: vendor layouts differ between cargo releases)" >&2
        fi
        if [ "$ref" = HEAD ]; then
            # Before the release is tagged the tarball follows every commit; what must hold
            # is that the build is reproducible, so the hash written at release time is the
            # one Buildroot will see.
            first=$sha
            build_tarball "$ref" "$out"
            if [ "$sha" != "$first" ]; then
                echo "  and a second build gave $sha: the tarball is not reproducible" >&2
                status=1
            else
                echo "  No tag v$version yet: the hash is refreshed when the release is cut" >&2
                echo "  (git tag v$version; ci/release-tarball.sh --write-hash). The build is reproducible." >&2
            fi
        else
            echo "  The release v$version is tagged: its tarball must not change; if the hash file is wrong, regenerate it with --write-hash." >&2
            status=1
        fi
    fi
    [ -z "$lic" ] || while read -r _ want f; do
        got=$(awk -v f="$f" '$1 == "sha256" && $3 == f { print $2; exit }' "$HASH_FILE")
        if [ "$got" != "$want" ]; then
            echo "release-tarball: license file $f has sha256 $want, $HASH_FILE records '${got:-nothing}'" >&2
            status=1
        fi
    done <<<"$lic"
    [ $status -eq 0 ] || exit 1
    if [ "$recorded" = "$sha" ]; then
        echo "release-tarball: $HASH_FILE matches $name from $ref ($(git rev-parse --short "$built_commit")): $sha"
    else
        echo "release-tarball: ok before the release (reproducible $name from $ref: $sha)"
    fi
    ;;
esac
