#!/bin/sh
# Start one labelled web container that `rvsd --docker` turns into a real server of the
# service PROTO:VIP:PORT (docs/containers.md lists every label). The page answers the
# container's NAME, so curl through the VIP shows which one served.
#
#   run-web.sh IMAGE NAME PROTO:VIP:PORT [docker run options...]
#   run-web.sh rvs-busybox:demo web1 tcp:10.0.0.1:80 -l rvs.weight=2
#
# Prints `ADDRESS:80`, the real server as rvsadm -Ln lists it. Stop it with
# `docker stop NAME`: rvsd drains it (weight 0) and removes it when its connections end.
set -eu
if [ $# -lt 3 ]; then
  echo "usage: $0 IMAGE NAME PROTO:VIP:PORT [docker run options...]" >&2
  exit 2
fi
image=$1 name=$2 service=$3
shift 3
docker run -d --name "$name" -l "rvs.service=$service" -l rvs.port=80 "$@" "$image" \
  /bin/sh -c "echo $name > /www/index.html; exec /bin/httpd -f -p 80 -h /www" >/dev/null
addr=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
echo "$addr:80"
