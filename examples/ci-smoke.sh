#!/usr/bin/env bash
# CI smoke test with no account and no network: start the built-in mock X API,
# capture from it into a file for a few seconds, and check that every record
# the run reports as delivered is in the file.
#
#   examples/ci-smoke.sh                       # uses `ingest` from PATH
#   INGEST_BIN=target/release/ingest examples/ci-smoke.sh
#
# Knobs (environment): INGEST_BIN, SMOKE_RECORDS (default 50), SMOKE_TIMEOUT
# (default 30s: the capture stops there even if fewer records came).
# Exit 0 when the smoke test passed; anything else is a failure.
set -euo pipefail

bin=${INGEST_BIN:-ingest}
records=${SMOKE_RECORDS:-50}
timeout=${SMOKE_TIMEOUT:-30s}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ingest-smoke.XXXXXX")
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The mock, on a free port: it prints its base URL on stdout first.
"$bin" mock twitter --listen 127.0.0.1:0 > "$work/mock.url" 2> "$work/mock.log" &
mock_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/mock.url" ] && break
  sleep 0.1
done
url=$(head -n 1 "$work/mock.url")
case "$url" in http://*) ;; *) echo "smoke: the mock did not start" >&2; cat "$work/mock.log" >&2; exit 1 ;; esac

# 2. Config and credentials are checked like production would.
export TWITTER_BEARER_TOKEN=${TWITTER_BEARER_TOKEN:-ci-smoke-token}
export INGEST_STATE_DIR="$work/state"
"$bin" check --source twitter --twitter-api-base "$url" --sink file --file-path "$work/out/x.jsonl"

# 3. A short capture: sync the example rules, stop after N records or the timeout.
"$bin" twitter --twitter-api-base "$url" --rules "$here/rules.toml" \
  --sink file --file-path "$work/out/x.jsonl" \
  --max-records "$records" --duration "$timeout" --quiet --summary 2> "$work/run.log"

# 4. The file holds exactly what the summary says was delivered, and enough of it.
summary=$(grep '"run_id"' "$work/run.log" | tail -n 1)
delivered=$(printf '%s' "$summary" | sed -n 's/.*"delivered":\([0-9]*\).*/\1/p')
lines=$(wc -l < "$work/out/x.jsonl")
echo "smoke: delivered=$delivered lines=$lines wanted=$records"
if [ -z "$delivered" ]; then
  echo "smoke: FAILED: no summary with a delivered count" >&2
  cat "$work/run.log" >&2
  exit 1
fi
if [ "$lines" -ne "$delivered" ] || [ "$lines" -lt "$records" ]; then
  echo "smoke: FAILED" >&2
  cat "$work/run.log" >&2
  exit 1
fi
echo "smoke: ok"
