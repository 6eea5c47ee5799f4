#!/usr/bin/env bash
# Shared helpers for the ci/ scripts (sourced, not run).

# Install Debian packages if the given command is missing.
need_apt() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "installing $pkg (for $cmd)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$pkg" >/dev/null
    fi
}

# Ensure a rustup component of the active toolchain.
need_component() {
    if ! rustup component list --installed 2>/dev/null | grep -q "^$1"; then
        rustup component add "$1"
    fi
}
