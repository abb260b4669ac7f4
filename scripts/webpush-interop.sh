#!/usr/bin/env bash
# webpush-interop.sh — Web Push interoperability, both ways, against the
# Node reference implementation:
#
#   1. installs npm web-push@3.6.7 and http_ece@1.2.1 into a temporary
#      directory from the npm registry;
#   2. tilecast → Node: TestInteropRequests writes the requests tilecast's
#      code builds (toast, tile, badge, padded) for the throw-away keys of
#      notify/webpush/testdata/interop/keys.json, and
#      scripts/webpush-interop/check.js decrypts them with http_ece and
#      verifies their VAPID tokens with node:crypto;
#   3. Node → tilecast: scripts/webpush-interop/make.js has web-push build
#      requests for the same keys, and TestDecryptOtherImplementations
#      decrypts and verifies them in Go.
#
# Needs node and npm (Debian: apt-get install -y nodejs npm; installed here
# when run as root) and the npm registry. Run from anywhere:
#   scripts/webpush-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		echo "webpush-interop.sh: node and npm are needed and missing: install them (Debian: sudo apt-get install -y nodejs npm)" >&2
		exit 2
	fi
	echo "webpush-interop.sh: installing nodejs and npm" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq nodejs npm >/dev/null
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		echo "webpush-interop.sh: node and npm are still missing after apt-get install nodejs npm" >&2
		exit 2
	fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
keys="$PWD/notify/webpush/testdata/interop/keys.json"

echo "== npm install web-push@3.6.7 http_ece@1.2.1"
if ! (cd "$tmp" && npm init -y >/dev/null &&
	npm install --no-audit --no-fund --loglevel=error web-push@3.6.7 http_ece@1.2.1 >/dev/null); then
	echo "webpush-interop.sh: npm could not install web-push@3.6.7 and http_ece@1.2.1 (is the npm registry reachable?)" >&2
	exit 2
fi
export NODE_PATH="$tmp/node_modules"

echo "== tilecast → Node: requests built by notify/webpush, checked with http_ece and node:crypto"
go test -count=1 -run '^TestInteropRequests$' ./notify/webpush -args -interop-out="$tmp/tilecast-requests.json"
node scripts/webpush-interop/check.js "$keys" "$tmp/tilecast-requests.json"

echo "== Node → tilecast: requests built by web-push, decrypted and verified in Go"
files="$(node scripts/webpush-interop/make.js "$keys" "$tmp")"
# -v lists the captures decrypted; pipefail keeps a failure a failure.
go test -count=1 -v -run '^TestDecryptOtherImplementations$' ./notify/webpush -args -node-request="$files" |
	grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test\.go)'
echo "webpush-interop.sh: interop checks passed"
