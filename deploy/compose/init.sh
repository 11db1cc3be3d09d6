#!/bin/sh
# Runs once before the kas nodes start: makes the cluster's shared secrets and registers the demo
# agent, writing its token where the agentk containers read it, and an API token to try things
# with. Idempotent: a second `up` keeps what the first made. SHARED and KAS are there for the
# test that runs this script outside a container (test/deploy/compose.test.ts).
set -eu
SHARED=${SHARED:-/shared}
KAS=${KAS:-node /app/bin/kas.js}
cd "$SHARED"
umask 077
for secret in api-secret private-secret; do
  if [ ! -s "$secret" ]; then
    head -c 32 /dev/urandom | base64 > "$secret.tmp" && mv "$secret.tmp" "$secret"
    echo "made $secret"
  fi
done
if [ ! -s demo.token ]; then
  $KAS agent register demo > demo.token.tmp && mv demo.token.tmp demo.token
  echo "registered agent demo"
fi
$KAS token issue --sub compose-user --agents demo --ttl 24h > api.token
# Grafana's data source password (deploy/compose/grafana-datasources.yaml reads it at start).
mkdir -p grafana
$KAS token issue --sub grafana --agents demo --ttl 720h > grafana/api.token
# The kas and agentk containers run as the image's user `node`, Grafana as uid 472.
if [ "$(id -u)" = 0 ] && id node > /dev/null 2>&1; then chown -R node:node "$SHARED"; fi
if [ "$(id -u)" = 0 ]; then chown -R 472 grafana; fi
echo "an API token for agent demo, valid 24h: docker compose exec kas-1 cat /shared/api.token"
