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
# The TLS inspection CA (what `sluice ca init` makes): ECDSA P-256, CA:TRUE pathlen 0, keyCertSign + cRLSign.
# Kept once made: workloads trust it. compose.yaml copies the key 0600 into Sluice's tmpfs before start.
if [ ! -s sluice-inspection-ca-key ] || [ ! -s sluice-inspection-ca-crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 730 \
    -keyout sluice-inspection-ca-key -out sluice-inspection-ca-crt \
    -subj "/CN=Sluice egress inspection CA ($(openssl rand -hex 4))/O=Sluice" \
    -addext 'basicConstraints=critical,CA:TRUE,pathlen:0' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
    -addext 'subjectKeyIdentifier=hash' 2>/dev/null
  echo "created secrets/sluice-inspection-ca-crt and secrets/sluice-inspection-ca-key"
fi
# The certificate is public (workloads trust it; the `trust` service reads it without capabilities).
chmod 0644 sluice-inspection-ca-crt
chown 10001:10001 sluice-inspection-ca-crt 2>/dev/null || chmod 0444 sluice-inspection-ca-crt
# Sluice reads them as UID 10001 inside the container, and compose bind-mounts the files as they are.
if ! chown 10001:10001 sluice-token-key sluice-admin-token sluice-inspection-ca-key 2>/dev/null; then
  chmod 0444 sluice-token-key sluice-admin-token sluice-inspection-ca-key
  echo "warning: not root, so the secrets are world-readable on this host (chown them to 10001 to tighten)" >&2
fi
