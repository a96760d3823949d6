#!/bin/sh
# Installs the `macaroon` npm package (pinned in macaroon-js/package-lock.json) that the
# interoperability tests of aria_auth run under node. Needs node and npm; as root on
# Debian they are installed with apt-get when missing. Without them the tests are
# skipped, except in CI (CI=true), where that is an error.
set -eu
here=$(cd "$(dirname "$0")/macaroon-js" && pwd)

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "interop: installing nodejs and npm"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends nodejs npm \
            || { apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm; }
    else
        echo "interop: node and npm are missing: the macaroon interoperability tests need them" >&2
        [ "${CI:-}" = true ] && exit 1
        exit 0
    fi
fi

installed="$here/node_modules/.package-lock.json"
if [ ! -f "$installed" ] || [ "$here/package-lock.json" -nt "$installed" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
