# Sourced by bench/cookie.sh and bench/cookie-cost.sh: the same two nginx real servers, the same
# HAProxy configuration and the same rvsd service for both, so the throughput run and the
# per-request cost run measure the same thing. The caller has sourced bench/common.sh and
# called bench_workdir (`$work`, `pids`).

RS1=127.0.0.21:18191
RS2=127.0.0.22:18191
HAPROXY_PORT=18192
RVSD_PORT=18193

# Real servers: one nginx, one worker, on CPU 1; each address answers with its own name (same
# length), so a caller can check where a pinned request went.
cookie_start_nginx() {
  bench_nginx_rs "  server { listen $RS1; location / { return 200 \"hello from real server 1\n\"; } }
  server { listen $RS2; location / { return 200 \"hello from real server 2\n\"; } }"
}

# HAProxy: http mode, one thread, round robin, cookie insertion as its manual describes.
# Writes $work/haproxy.cfg; the caller starts `haproxy -f $work/haproxy.cfg -db` its own way.
cookie_haproxy_conf() {
  cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend be
backend be
  balance roundrobin
  cookie RVSID insert indirect nocache
  server rs1 $RS1 cookie rs1
  server rs2 $RS2 cookie rs2
CONF
}

# rvsd's service: round robin, the cookie engine (the persistence timeout is required). Waits
# for the control socket first.
cookie_rvsd_service() {
  local rvsadm=$1 sock=$2
  for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
  "$rvsadm" --socket "$sock" -A -t 127.0.0.1:$RVSD_PORT -s rr -p 1800 --pe cookie
  "$rvsadm" --socket "$sock" -a -t 127.0.0.1:$RVSD_PORT -r "$RS1" -m
  "$rvsadm" --socket "$sock" -a -t 127.0.0.1:$RVSD_PORT -r "$RS2" -m
}

# The RVSID cookie the proxy on `port` issues for real server 1 (asks until a response comes
# from it), checked to pin: 6 requests with it all reach real server 1. Prints the
# `RVSID=...` pair.
cookie_for_rs1() {
  local name=$1 port=$2 url hdrs c=""
  url="http://127.0.0.1:$port/"
  for _ in 1 2 3 4; do
    hdrs=$(curl -sf --max-time 20 -D - -o "$work/body" "$url") || { echo "bench: $name does not answer" >&2; return 1; }
    if grep -q "server 1" "$work/body"; then
      c=$(tr -d '\r' <<<"$hdrs" | sed -n 's/^[Ss]et-[Cc]ookie: *\(RVSID=[^;]*\).*/\1/p' | head -1)
      break
    fi
  done
  [ -n "$c" ] || { echo "bench: $name issued no RVSID cookie for real server 1" >&2; return 1; }
  for _ in 1 2 3 4 5 6; do
    curl -sf --max-time 20 -H "Cookie: $c" "$url" | grep -q "server 1" ||
      { echo "bench: $name did not keep $c on real server 1" >&2; return 1; }
  done
  echo "$c"
}
