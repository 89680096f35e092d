#!/bin/sh
# Creates the two secrets compose.yaml mounts at /run/secrets: the HMAC key for run tokens and the admin
# bearer token. Existing files are kept, so re-running never invalidates tokens already handed out.
# See compose/README.md for the whole setup.
set -eu
command -v openssl >/dev/null 2>&1 || {
  echo "init-secrets.sh needs openssl to make random keys (Debian/Ubuntu: apt-get install openssl); see compose/README.md" >&2
  exit 1
}
cd "$(dirname "$0")/secrets"
umask 077
for name in sluice-token-key sluice-admin-token; do
  [ -s "$name" ] || { openssl rand -hex 32 > "$name"; echo "created secrets/$name"; }
done
# Sluice reads them as UID 10001 inside the container, and compose bind-mounts the files as they are.
if ! chown 10001:10001 sluice-token-key sluice-admin-token 2>/dev/null; then
  chmod 0444 sluice-token-key sluice-admin-token
  echo "warning: not root, so the secrets are world-readable on this host (chown them to 10001 to tighten)" >&2
fi
