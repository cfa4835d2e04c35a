#!/usr/bin/env bash
# Install what the real-MTA test tier (tests/integration/) needs: Postfix and Dovecot (SASL only),
# from Debian packages, non-interactively. Idempotent: does nothing when both are installed.
#
# The packages are installed unconfigured and their system services are NOT started: Postfix is
# preseeded with "No configuration", and service starts are denied while apt runs (policy-rc.d),
# unless the machine already has its own policy. The tests run private instances from a
# temporary directory on loopback ports and stop them.
#
# Without root or apt-get (or with SMTPKIT_NO_APT=1) it installs nothing and says why; the tests
# then skip with the reason (or fail, with SMTPKIT_REQUIRE_POSTFIX=1).
set -euo pipefail

if [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/dovecot ]; then
  exit 0
fi
if [ -n "${SMTPKIT_NO_APT:-}" ]; then
  echo "install-postfix: SMTPKIT_NO_APT is set; not installing postfix/dovecot-core" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postfix: needs root and apt-get; not installing postfix/dovecot-core" >&2
  exit 0
fi

echo "== apt-get install postfix dovecot-core"
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  # Exit code 101 = "action forbidden": invoke-rc.d / deb-systemd-invoke start nothing.
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  postfix dovecot-core >/dev/null
