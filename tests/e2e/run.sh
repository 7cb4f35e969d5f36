#!/usr/bin/env bash
# End-to-end tests of the web console: starts a real pushgate on a free loopback port with a
# fresh data directory, drives /console in Debian's headless Chromium, saves screenshots.
#
#   tests/e2e/run.sh                      # cargo build, then test target/debug/pushgate
#   PUSHGATE_BIN=/path/to/pushgate tests/e2e/run.sh
#   E2E_OUT=/tmp/shots tests/e2e/run.sh   # screenshots and the server log (default target/e2e)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

bin="${PUSHGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/pushgate}"
out="${E2E_OUT:-target/e2e}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null 2>&1; then
  echo "e2e: installing Debian's chromium"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
command -v node >/dev/null 2>&1 || { echo "e2e: node (>= 20) is required" >&2; exit 1; }

if [ -n "${PUSHGATE_BIN:-}" ]; then
  [ -x "$bin" ] || { echo "e2e: PUSHGATE_BIN=$bin is not an executable" >&2; exit 1; }
else
  # Test the tree as it is: a no-op when the binary is up to date.
  echo "e2e: cargo build --bin pushgate"
  cargo build --bin pushgate
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
random_token() {
  node -e 'console.log(require("crypto").randomBytes(18).toString("base64url"))'
}

# wait_http URL PID NAME: until URL answers 200, while process PID lives, for at most 60 s.
wait_http() {
  node -e '
    const [url, pid, name] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
    const deadline = Date.now() + 60000;
    (async () => {
      for (;;) {
        try { process.kill(pid, 0); } catch { console.error(`e2e: ${name} exited during start-up`); process.exit(1); }
        try { if ((await fetch(url)).status === 200) process.exit(0); } catch {}
        if (Date.now() > deadline) { console.error(`e2e: ${url} not 200 within 60 s`); process.exit(1); }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
  ' "$1" "$2" "$3"
}

data_dir="$(mktemp -d -t pushgate-e2e.XXXXXX)"
server_pid=""
emulator_pid=""
vendor_pids=()
cleanup() {
  local pid
  for pid in "$server_pid" "$emulator_pid" "${vendor_pids[@]}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$data_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(free_port)"
admin_token="e2e-admin-$(random_token)"
api_token="e2e-api-$(random_token)"

# No vendor traffic may leave this machine: point Xiaomi at the built-in emulator when the
# binary has one, otherwise at a closed loopback port; the other vendors at that port.
xiaomi_url="http://127.0.0.1:9"
emulator_port="$(free_port)"
if "$bin" emulator xiaomi --help >/dev/null 2>&1; then
  "$bin" emulator xiaomi --listen "127.0.0.1:$emulator_port" >"$out/emulator.log" 2>&1 &
  emulator_pid=$!
  xiaomi_url="http://127.0.0.1:$emulator_port"
fi

# The other vendors' emulators, each on its own port when the binary has it; the gateway is
# pointed at them (or at a closed port) and the tests get <VENDOR>_EMULATOR_URL.
vendor_env=()
for vendor in oppo vivo meizu; do
  url="http://127.0.0.1:9"
  if "$bin" emulator "$vendor" --help >/dev/null 2>&1; then
    vport="$(free_port)"
    "$bin" emulator "$vendor" --listen "127.0.0.1:$vport" >"$out/emulator-$vendor.log" 2>&1 &
    vendor_pids+=("$!")
    url="http://127.0.0.1:$vport"
    if ! wait_http "$url/_emulator/stats" "$!" "the $vendor emulator"; then
      tail -n 30 "$out/emulator-$vendor.log" >&2 || true
      exit 1
    fi
    vendor_env+=("${vendor^^}_EMULATOR_URL=$url")
  fi
  vendor_env+=("PUSHGATE_${vendor^^}_BASE_URL=$url")
done

echo "e2e: starting $bin serve on 127.0.0.1:$port (data in $data_dir)"
env "${vendor_env[@]}" \
PUSHGATE_LISTEN="127.0.0.1:$port" \
PUSHGATE_DATA_DIR="$data_dir" \
PUSHGATE_ADMIN_TOKEN="$admin_token" \
PUSHGATE_API_TOKEN="$api_token" \
PUSHGATE_XIAOMI_BASE_URL="$xiaomi_url" \
PUSHGATE_HUAWEI_BASE_URL="http://127.0.0.1:9" PUSHGATE_HUAWEI_AUTH_URL="http://127.0.0.1:9/oauth2/v3/token" \
PUSHGATE_HONOR_BASE_URL="http://127.0.0.1:9" PUSHGATE_HONOR_AUTH_URL="http://127.0.0.1:9/auth/token" \
  "$bin" serve >"$out/pushgate.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$port"
if [ -n "$emulator_pid" ] && ! wait_http "$xiaomi_url/_emulator/stats" "$emulator_pid" "the Xiaomi emulator"; then
  tail -n 30 "$out/emulator.log" >&2 || true
  exit 1
fi
if ! wait_http "$base/readyz" "$server_pid" "pushgate"; then
  echo "---- pushgate.log" >&2
  tail -n 50 "$out/pushgate.log" >&2 || true
  exit 1
fi

status=0
(
  cd "$here"
  PUSHGATE_URL="$base" \
  PUSHGATE_ADMIN_TOKEN="$admin_token" \
  PUSHGATE_API_TOKEN="$api_token" \
  E2E_OUT="$out" \
  XIAOMI_EMULATOR_URL="${emulator_pid:+$xiaomi_url}" \
  env "${vendor_env[@]}" \
    node --test --test-concurrency=1 --test-reporter=spec console.spec.mjs
) || status=$?

if [ "$status" -ne 0 ]; then
  echo "---- last lines of pushgate.log" >&2
  tail -n 40 "$out/pushgate.log" >&2 || true
fi
echo "e2e: screenshots and logs in $out"
exit "$status"
