# Sourced by the bench scripts: the parts that must behave the same in each, so a fix to one
# (signal handling, clean-up, the lab set-up) reaches all. The proxy family (proxy.sh,
# cookie.sh, proxy-udp.sh, latency.sh) uses the first part, the packet-plane benches
# (packet.sh, sync.sh) the second. The caller sets `self` (its own resolved path) and has
# cd'ed to the repository.

# Re-runs the script in its own session, hence its own autogroup, so the nice value the script
# sets is ours alone (not the caller's shell, nor a build it runs in the background). Returns
# in the child; in the parent, waits and exits with the child's status.
bench_own_session() {
  if [ -z "${RVS_BENCH_CHILD:-}" ] && [ "${RVS_BENCH_NICE:--15}" != 0 ] && command -v setsid >/dev/null; then
    RVS_BENCH_CHILD=1 setsid --wait "$self" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
    rc=0
    wait "$child" || rc=$?
    # A trapped signal interrupts the first wait; the child is then cleaning up.
    wait "$child" 2>/dev/null || true
    exit "$rc"
  fi
}

# A work directory `$work` (mode 755: nginx workers, user www-data, read files from it), the
# array `pids` of processes to stop, and traps that stop them and remove `$work` on any exit.
bench_workdir() {
  work=$(mktemp -d "/tmp/rvs-bench-$1.XXXXXX")
  chmod 755 "$work"
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# need PROGRAM DEBIAN_PACKAGE: exit 2 with the install command when PROGRAM is missing.
need() {
  command -v "$1" >/dev/null || {
    echo "bench/$(basename "$self"): $1 is missing (apt-get install -y $2)" >&2
    exit 2
  }
}

# bench_nginx_rs SERVERS: the real servers of the proxy family, the same in each bench: one
# nginx, one worker, pinned to CPU 1 (the client's CPU; the proxy under test gets CPU 0), no
# access log, its temporary files in $work/rs, no limit on the requests of a keep-alive
# connection. SERVERS is the `server { ... }` block(s) of its http section. Adds nginx to `pids`
# and sets RS_PID.
bench_nginx_rs() {
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
$1
}
CONF
  taskset -c 1 nginx -c "$work/rs/nginx.conf" -p "$work/rs" -g 'daemon off;' &
  pids+=($!)
  RS_PID=$!
}

# --- The packet-plane benches (packet.sh, sync.sh): rvsd in the rvs-lab NAT lab, driven by
# trafgen. The caller sets `P` (the lab's prefix) and has cd'ed to the repository.

# Release builds of rvsd, rvsadm and rvs-lab: sets LAB, RVSD (RVSD_BIN: another build, for
# A/B runs) and RVSADM.
bench_lab_build() {
  cargo build --release -q -p rvsd -p rvsadm -p rvs-lab
  LAB=target/release/rvs-lab
  RVSD=${RVSD_BIN:-target/release/rvsd}
  RVSADM=target/release/rvsadm
}

# bench_nat_lab NAME: a work directory `$work` and an EXIT trap that stops rvsd (`$rvsd_pid`),
# takes the lab down and removes `$work`; then the NAT lab with prefix $P (a leftover of that
# prefix taken down first) and its names: C, D, RS (array), VIP, DMAC, CMAC. The real servers
# drop the UDP datagrams to port 9 (nft), so no replies or port-unreachables flow back.
bench_nat_lab() {
  work=$(mktemp -d "/tmp/rvs-bench-$1.XXXXXX")
  rvsd_pid=
  trap bench_nat_lab_cleanup EXIT
  "$LAB" down --prefix "$P" >/dev/null 2>&1 || true
  "$LAB" up nat --prefix "$P" --no-nginx >/dev/null
  C=$P-client D=$P-director RS=("$P-rs1" "$P-rs2")
  VIP=10.100.0.1
  DMAC=$(ip netns exec "$D" cat /sys/class/net/eth0/address)
  CMAC=$(ip netns exec "$C" cat /sys/class/net/eth0/address)
  local rs
  for rs in "${RS[@]}"; do
    ip netns exec "$rs" nft -f - <<NFT
table ip sink {
  chain in { type filter hook input priority 0; policy accept; udp dport 9 counter drop; }
}
NFT
  done
}

bench_nat_lab_cleanup() {
  if [ -n "$rvsd_pid" ]; then kill -TERM "$rvsd_pid" 2>/dev/null || true; wait "$rvsd_pid" 2>/dev/null || true; fi
  "$LAB" down --prefix "$P" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# No netfilter in the lab's bridge (a real switch has none): on a host with br_netfilter
# loaded, the bridge would hand every frame to its namespace's netfilter hooks too.
bench_switch_without_netfilter() {
  local t
  for t in iptables ip6tables arptables; do
    ip netns exec "$P-switch" sysctl -qw "net.bridge.bridge-nf-call-$t=0" 2>/dev/null || true
  done
}

# The UDP service VIP:9 under rr over the two NAT real servers, on the rvsd started with
# control socket $work/rvsd.sock; returns once the nft guard has the VIP and the director's
# kernel has resolved the real servers.
bench_nat_service() {
  "$RVSADM" --socket "$work/rvsd.sock" -A -u $VIP:9 -s rr
  "$RVSADM" --socket "$work/rvsd.sock" -a -u $VIP:9 -r 10.2.0.11:9 -m
  "$RVSADM" --socket "$work/rvsd.sock" -a -u $VIP:9 -r 10.2.0.12:9 -m
  for _ in $(seq 100); do ip netns exec "$D" nft list table netdev rvs 2>/dev/null | grep -q "$VIP" && break; sleep 0.1; done
  ip netns exec "$D" ping -c1 -W1 10.2.0.11 >/dev/null 2>&1 || true
  ip netns exec "$D" ping -c1 -W1 10.2.0.12 >/dev/null 2>&1 || true
}

rvsd_stop() {
  kill -TERM "$rvsd_pid"; wait "$rvsd_pid" 2>/dev/null || true; rvsd_pid=
  rm -f "$work/rvsd.sock"
}

# Packets received by the real servers' interfaces, and sent by the client's.
rx_total() {
  local n=0 r rs
  for rs in "${RS[@]}"; do
    r=$(ip netns exec "$rs" cat /sys/class/net/eth0/statistics/rx_packets)
    n=$((n + r))
  done
  echo "$n"
}
tx_client() { ip netns exec "$C" cat /sys/class/net/eth0/statistics/tx_packets; }

# Busy CPU time of the whole machine, in nanoseconds (all CPUs: user, nice, system, irq,
# softirq, steal from /proc/stat), so that no contender gains by using another core.
busy_ns() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e9 / hz }' /proc/stat
}
