#!/bin/sh
# Put one service and its real servers into etcd for `rvsd --etcd URL --etcd-prefix P`
# (docs/containers.md has the key layout and every field).
#
#   put-table.sh NAME PROTO:VIP:PORT SCHEDULER RS_ADDR:PORT [RS_ADDR:PORT ...]
#   ETCDCTL_ENDPOINTS=http://10.0.0.5:2379 put-table.sh web tcp:10.0.0.1:80 rr 10.0.1.1:8080 10.0.1.2:8080
#
# etcdctl reads ETCDCTL_ENDPOINTS; RVS_PREFIX is the prefix (default /rvs). IPv4 addresses.
# The real servers are NAT (masq) real servers with weight 1: keys servers/NAME/rs1, rs2, ...
set -eu
export ETCDCTL_API=3
prefix=${RVS_PREFIX:-/rvs}
if [ $# -lt 4 ]; then
  echo "usage: $0 NAME PROTO:VIP:PORT SCHEDULER RS_ADDR:PORT..." >&2
  exit 2
fi
name=$1 svc=$2 sched=$3
shift 3
proto=${svc%%:*} rest=${svc#*:}
vip=${rest%:*} port=${rest##*:}
etcdctl put "$prefix/services/$name" \
  "{\"protocol\":\"$proto\",\"addr\":\"$vip\",\"port\":$port,\"scheduler\":\"$sched\"}"
i=0
for rs in "$@"; do
  i=$((i + 1))
  etcdctl put "$prefix/servers/$name/rs$i" \
    "{\"addr\":\"${rs%:*}\",\"port\":${rs##*:},\"method\":\"masq\"}"
done
