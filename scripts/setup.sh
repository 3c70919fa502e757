#!/usr/bin/env bash
# Installs what a fresh clone lacks, then returns quickly on every later run:
# npm dependencies (including Node 24 from the npm registry's `node` package) and
# nats-server, redis-server, swaks, nmap and chromium from Debian's packages, and a
# nats-server 2.10 from Debian trixie's package into .tools when the system's is older.
set -euo pipefail
cd "$(dirname "$0")/.."

need_npm=0
[ -x node_modules/.bin/node ] || need_npm=1
[ -f node_modules/.package-lock.json ] || need_npm=1
if [ $need_npm -eq 0 ] && [ package-lock.json -nt node_modules/.package-lock.json ]; then need_npm=1; fi
if [ $need_npm -eq 1 ]; then
  echo "setup: installing npm dependencies (npm ci)"
  # npm runs on the system Node here, before the project's Node 24 exists: every package
  # that wants Node 22+ would print an engine warning. Only those lines are dropped.
  { npm ci --no-audit --no-fund 2>&1 1>&3 | { grep -v 'EBADENGINE' || true; } >&2; } 3>&1
fi
if ! node_modules/.bin/node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)'; then
  echo "setup: node_modules/.bin/node is not Node 24; remove node_modules and run again" >&2
  exit 1
fi

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
# nmap's smtp-open-relay script checks the Default Frontend is not an open relay (test/open-relay.test.ts).
command -v nmap >/dev/null 2>&1 || missing+=(nmap)
# swaks --tls (STARTTLS in the README and the tests) needs Perl's TLS modules.
perl -MNet::SSLeay -MIO::Socket::SSL -e 1 >/dev/null 2>&1 || missing+=(libnet-ssleay-perl libio-socket-ssl-perl)
# HAProxy fronts two frontends with PROXY protocol v2 in the load-balancer test.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# docker-compose (v1, Debian's) validates docker-compose.yml without a Docker engine.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# Headless Chromium drives the admin dashboard in test/dashboard.test.ts (playwright-core, no browser download).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}" >&2
    echo "       (nats-server 2.9+ with JetStream and redis-server 7 are required)" >&2
    exit 1
  fi
fi
# Bookworm's nats-server 2.9 loses work items in clustered faults: the project takes Debian
# trixie's 2.10 package, signature-checked, into .tools (scripts/fetch-nats-server.sh).
# Without it (no mirror, no keyring) everything still runs on the system's nats-server.
bash scripts/fetch-nats-server.sh || true
# test/deploy.test.ts renders deploy/k8s with `kubectl kustomize` (kubectl 1.21+; Debian's
# kubernetes-client 1.20 is too old). It is not in Debian's repositories: say so early.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: kubectl (1.21+) not found; test/deploy.test.ts will fail until it is installed (https://kubernetes.io/docs/tasks/tools/)" >&2
fi
# Debian's packages start their own services where an init system runs; Transit never uses them.
