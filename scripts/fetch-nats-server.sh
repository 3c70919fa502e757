#!/usr/bin/env bash
# Puts a nats-server 2.10 or later at .tools/nats-server when the machine's own is older.
#
# Debian bookworm ships nats-server 2.9.10, whose clustered streams lose acknowledged work
# items and reset replicas in a loop under the faults of the chaos runs (docs/operations.md,
# "nats-server versions"). Debian's next release (trixie) packages 2.10. This takes that
# package, verified the way apt verifies it: the release file's signature against the
# Debian archive keyring already on the machine, the package index's SHA-256 from that
# release file, and the package's SHA-256 from that index. Only the binary is kept, in
# the project; nothing is installed on the system. The tests, `npm start`, `npm run
# cluster`, the chaos runner and bench:compare then prefer it (TRANSIT_NATS_SERVER
# overrides all of them).
#
# Usage: bash scripts/fetch-nats-server.sh   (also run by scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${TRANSIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${TRANSIT_NATS_SUITE:-trixie}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
TARGET=.tools/nats-server

# "2.10.27" from "nats-server: v2.10.27"; exits 1 below 2.10.
recent_enough() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\.[0-9]*\)\..*/\1/p')
  [ -n "$v" ] || return 1
  local major=${v%%.*} minor=${v#*.}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

[ -x "$TARGET" ] && recent_enough "$TARGET" && exit 0
for system in /usr/sbin/nats-server /usr/bin/nats-server; do
  # The machine's own is recent enough: nothing to fetch.
  [ -x "$system" ] && recent_enough "$system" && exit 0
done

fail() {
  echo "fetch-nats-server: $*" >&2
  echo "fetch-nats-server: the tests and local clusters use the system's nats-server instead (see docs/operations.md, \"nats-server versions\")" >&2
  exit 1
}
for tool in curl gpgv xz dpkg-deb sha256sum; do command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"; done
[ -r "$KEYRING" ] || fail "$KEYRING is missing (Debian's debian-archive-keyring package)"
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "setup: fetching nats-server from Debian $SUITE (bookworm's 2.9 loses work items in clustered faults)"
curl -fsS --max-time 60 -o "$work/InRelease" "$MIRROR/dists/$SUITE/InRelease" || fail "could not download $MIRROR/dists/$SUITE/InRelease"
# Only what the signature covers is read from here on.
gpgv --quiet --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>/dev/null || fail "the signature of $SUITE's InRelease does not verify against $KEYRING"
index="main/binary-$arch/Packages.xz"
index_sha=$(awk -v f="$index" '/^SHA256:/{s=1; next} /^[A-Za-z]/{s=0} s && $3 == f {print $1}' "$work/Release")
[ -n "$index_sha" ] || fail "$SUITE's Release names no $index"
curl -fsS --max-time 300 -o "$work/Packages.xz" "$MIRROR/dists/$SUITE/$index" || fail "could not download $index"
echo "$index_sha  $work/Packages.xz" | sha256sum --check --quiet || fail "$index does not match the SHA-256 in the signed Release"
read -r filename deb_sha < <(xz -dc "$work/Packages.xz" | awk '
  /^Package: /{p = ($2 == "nats-server")}
  p && /^Filename: /{f = $2}
  p && /^SHA256: /{s = $2}
  /^$/{ if (p && f != "" && s != "") { print f, s; exit } p = 0 }')
[ -n "${filename:-}" ] || fail "$SUITE has no nats-server package for $arch"
curl -fsS --max-time 300 -o "$work/nats-server.deb" "$MIRROR/$filename" || fail "could not download $MIRROR/$filename"
echo "$deb_sha  $work/nats-server.deb" | sha256sum --check --quiet || fail "$filename does not match the SHA-256 in the signed index"
dpkg-deb -x "$work/nats-server.deb" "$work/root"
[ -x "$work/root/usr/sbin/nats-server" ] || fail "$filename holds no usr/sbin/nats-server"
recent_enough "$work/root/usr/sbin/nats-server" || fail "$filename holds $("$work/root/usr/sbin/nats-server" --version), older than 2.10"
mkdir -p .tools
install -m 0755 "$work/root/usr/sbin/nats-server" "$TARGET"
echo "setup: $("$TARGET" --version) at $TARGET ($(basename "$filename"), SHA-256 verified)"
