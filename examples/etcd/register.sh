#!/bin/sh
# Register a real server of service NAME in etcd with a lease and keep the lease alive while
# this script runs (start it with the server, e.g. from its unit). When the host or the
# script dies, the lease expires after TTL seconds, etcd deletes the key and every rvsd
# following the prefix drains the real server (docs/containers.md, "Leases").
#
#   register.sh NAME ID ADDR:PORT [TTL]
#   ETCDCTL_ENDPOINTS=http://10.0.0.5:2379 register.sh web "$(hostname)" 10.0.1.3:8080 10
#
# etcdctl reads ETCDCTL_ENDPOINTS; RVS_PREFIX is the prefix (default /rvs). IPv4 addresses.
set -eu
export ETCDCTL_API=3
prefix=${RVS_PREFIX:-/rvs}
if [ $# -lt 3 ]; then
  echo "usage: $0 NAME ID ADDR:PORT [TTL]" >&2
  exit 2
fi
name=$1 id=$2 rs=$3 ttl=${4:-10}
lease=$(etcdctl lease grant "$ttl" | awk '{print $2}')
etcdctl put --lease "$lease" "$prefix/servers/$name/$id" \
  "{\"addr\":\"${rs%:*}\",\"port\":${rs##*:}}"
exec etcdctl lease keep-alive "$lease" >/dev/null
