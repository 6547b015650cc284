#!/usr/bin/env bash
# Debian packages the tests use: PostgreSQL (SQL rewrites, wire listener), Redis
# (cluster-wide limits), Prometheus + promtool (dashboard and alert checks), wrk (bench),
# openssl (TLS to PostgreSQL), npm (scripts/conformance-deps.sh), chromium + chromium-driver
# (the approvals page in a real headless browser). Installs only what is missing; needs root
# or sudo.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v psql >/dev/null || need+=(postgresql-client)
command -v npm >/dev/null || need+=(npm)  # fetches the pinned MCP conformance CLI and Node 22
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start their own services; the tests start private instances.
$sudo systemctl disable --now redis-server prometheus 2>/dev/null || true
