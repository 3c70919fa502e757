#!/bin/sh
# Container entry point for every Transit role: `docker run transit <role> [args...]`,
# and for the admin CLI: `docker run transit transitctl <verb> ...` (NATS_URL).
# The role comes from the first argument, or from TRANSIT_ROLE when no argument is given
# (an image built with --build-arg TRANSIT_ROLE=hub runs the hub without a command).
# It maps the role to services/<role>/src/main.ts and execs Node 24 on it, so node is the
# process that receives SIGTERM (through tini, the image's PID 1) and stops gracefully.
set -eu

APP_DIR=/app
ROLES="frontend hub mailbox-delivery submission outbound-proxy admin" # keep in step with the case below

usage() {
  echo "usage: docker run <image> <role> [args...]" >&2
  echo "       docker run <image> transitctl <verb> [args...]" >&2
  echo "roles: $ROLES" >&2
}

if [ "$#" -gt 0 ]; then
  role=$1
  shift
else
  role=${TRANSIT_ROLE:-}
fi

if [ -z "$role" ]; then
  echo "transit: no role given (pass it as the command or set TRANSIT_ROLE)" >&2
  usage
  exit 64
fi

case "$role" in
  frontend | hub | mailbox-delivery | submission | outbound-proxy | admin) ;;
  transitctl)
    cd "$APP_DIR"
    exec node "$APP_DIR/tools/transitctl/src/main.ts" "$@"
    ;;
  *)
    echo "transit: unknown role \"$role\"" >&2
    usage
    exit 64
    ;;
esac

main="$APP_DIR/services/$role/src/main.ts"
if [ ! -f "$main" ]; then
  echo "transit: $main is missing from this image" >&2
  exit 70
fi

cd "$APP_DIR"
# The same Node flags as ROLE_NODE_FLAGS in libs/cluster/src/cluster.ts (why: see there).
exec node --max-semi-space-size=2 "$main" "$@"
