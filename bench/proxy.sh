#!/usr/bin/env bash
# Whole-system benchmark of the socket proxy data plane against its peers, in one run:
#   rvsd (one worker) vs HAProxy (tcp mode, one thread) vs nginx stream (one worker),
# the same two nginx real servers behind each, wrk as the client, all on loopback.
# The load balancer under test is pinned to CPU 0; real servers and wrk share CPU 1.
#
# Usage: bench/proxy.sh [seconds-per-run]   (needs: haproxy, nginx-light + libnginx-mod-stream, wrk)
# Prints a markdown table; paste it into docs/benchmarks.md with the date and `uptime`.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${CONNS:-50}
work=$(mktemp -d /tmp/rvs-bench-proxy.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench/proxy.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need haproxy haproxy
need nginx "nginx-light libnginx-mod-stream"
need wrk wrk
need taskset util-linux
STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MOD" ] || { echo "bench/proxy.sh: $STREAM_MOD missing (apt-get install -y libnginx-mod-stream)" >&2; exit 2; }

cargo build --release -q -p rvsd -p rvsadm
RVSD=target/release/rvsd
RVSADM=target/release/rvsadm

RS1=127.0.0.21:18181
RS2=127.0.0.22:18181

# Real servers: one nginx, one worker, two listen addresses, a small fixed body.
mkdir -p "$work/rs"
cat > "$work/rs/nginx.conf" <<CONF
worker_processes 1;
pid $work/rs/nginx.pid;
error_log $work/rs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/rs; proxy_temp_path $work/rs; fastcgi_temp_path $work/rs;
  uwsgi_temp_path $work/rs; scgi_temp_path $work/rs;
  keepalive_requests 1000000;
  server { listen $RS1; listen $RS2; location / { return 200 "hello from a real server\n"; } }
}
CONF
taskset -c 1 nginx -c "$work/rs/nginx.conf" -p "$work/rs" -g 'daemon off;' &
pids+=($!)

# HAProxy: tcp mode, one thread, round robin.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:18082
  default_backend be
backend be
  balance roundrobin
  server rs1 $RS1
  server rs2 $RS2
CONF
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)

# nginx stream: one worker, round robin.
mkdir -p "$work/ng"
cat > "$work/ng/nginx.conf" <<CONF
load_module $STREAM_MOD;
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 20000; }
stream {
  upstream be { server $RS1; server $RS2; }
  server { listen 127.0.0.1:18083; proxy_pass be; }
}
CONF
taskset -c 0 nginx -c "$work/ng/nginx.conf" -p "$work/ng" -g 'daemon off;' &
pids+=($!)

# rvsd: one proxy worker.
SOCK=$work/rvsd.sock
RUST_LOG=warn taskset -c 0 "$RVSD" --socket "$SOCK" --workers 1 --metrics-listen off &
pids+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
"$RVSADM" --socket "$SOCK" -A -t 127.0.0.1:18081 -s rr
"$RVSADM" --socket "$SOCK" -a -t 127.0.0.1:18081 -r "$RS1" -m
"$RVSADM" --socket "$SOCK" -a -t 127.0.0.1:18081 -r "$RS2" -m
sleep 0.5

# One wrk run: prints "req/s p99_ms".
run_wrk() {
  local port=$1; shift
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@" "http://127.0.0.1:$port/" 2>&1)
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "${rps:-0} ${p99:-0}"
}

declare -A KA CL
for name in rvsd:18081 haproxy:18082 nginx-stream:18083; do
  n=${name%%:*}; p=${name##*:}
  curl -sf "http://127.0.0.1:$p/" >/dev/null || { echo "bench/proxy.sh: $n does not answer on $p" >&2; exit 1; }
  KA[$n]=$(run_wrk "$p")
  CL[$n]=$(run_wrk "$p" -H "Connection: close")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "| proxy (1 worker, CPU 0) | keep-alive req/s | p99 ms | Connection: close conn/s | p99 ms |"
echo "|---|---|---|---|---|"
for n in rvsd haproxy nginx-stream; do
  read -r ka kap <<<"${KA[$n]}"; read -r cl clp <<<"${CL[$n]}"
  echo "| $n | $ka | $kap | $cl | $clp |"
done
read -r rka rkap <<<"${KA[rvsd]}"; read -r rcl rclp <<<"${CL[rvsd]}"
read -r hka hkap <<<"${KA[haproxy]}"; read -r hcl hclp <<<"${CL[haproxy]}"
echo
echo "rvsd / HAProxy: keep-alive $(ratio "$rka" "$hka")x, close $(ratio "$rcl" "$hcl")x, p99 (HAProxy / rvsd, higher is better) keep-alive $(ratio "$hkap" "$rkap")x, close $(ratio "$hclp" "$rclp")x"
echo "($(date -u +%F), ${DUR}s per run, $CONNS connections, load: $(cut -d' ' -f1-3 /proc/loadavg))"
