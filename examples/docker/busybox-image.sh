#!/bin/sh
# Build a tiny web-server image FROM scratch (no registry needed) for trying
# `rvsd --docker`: the static busybox of Debian's busybox-static, with the applets the example
# containers use, and /www/index.html. docker reads DOCKER_HOST for a non-default daemon.
#
#   busybox-image.sh TAG            e.g. busybox-image.sh rvs-busybox:demo
#
# Containers then run `/bin/httpd -f -p PORT -h /www` (see run-web.sh).
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 TAG" >&2
  exit 2
fi
tag=$1
busybox=${BUSYBOX:-/bin/busybox}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www"
cp "$busybox" "$root/bin/busybox"
for applet in sh httpd sleep wget true cat hostname test rm; do
  ln -s busybox "$root/bin/$applet"
done
echo hello >"$root/www/index.html"
tar -C "$root" -cf - . | docker import - "$tag" >/dev/null
echo "$tag"
