#!/usr/bin/env bash
# Test fixtures for berth's registry client: a real Distribution registry on 127.0.0.1 and a small
# OCI image built from Debian's busybox-static with umoci (no network).
#
#   registry-fixture.sh image DIR [TAG]     OCI layout at DIR, tag TAG (default busybox): layer 1 is
#                                           busybox + applet symlinks, layer 2 adds /etc/berth-fixture
#   registry-fixture.sh start DIR [HTPASSWD] start docker-registry with config + storage under DIR on a
#                                           free 127.0.0.1 port; prints "PORT PID"; HTPASSWD = user:pass
#                                           turns on htpasswd basic auth
#   registry-fixture.sh seed SRC PORT REPO:TAG [zstd]   skopeo copy oci:SRC into the registry
#   registry-fixture.sh stop PID            stop a registry started by `start`
set -euo pipefail

cmd=${1:?usage: registry-fixture.sh image|start|seed|stop ...}; shift

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

case $cmd in
image)
  dir=${1:?DIR}; tag=${2:-busybox}
  work=$(mktemp -d "${TMPDIR:-/tmp}/berth-oci-image.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  [ -d "$dir" ] || umoci init --layout "$dir"
  umoci new --image "$dir:$tag"
  umoci unpack --image "$dir:$tag" "$work/bundle" >/dev/null
  mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc" "$work/bundle/rootfs/tmp"
  cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$work/bundle/rootfs/bin/$applet"
  done
  umoci repack --image "$dir:$tag" "$work/bundle" >/dev/null
  rm -rf "$work/bundle"
  umoci unpack --image "$dir:$tag" "$work/bundle" >/dev/null
  echo "berth registry fixture" > "$work/bundle/rootfs/etc/berth-fixture"
  umoci repack --image "$dir:$tag" "$work/bundle" >/dev/null
  umoci config --image "$dir:$tag" --os linux --architecture amd64 --config.cmd sh \
    --config.env PATH=/bin --config.workingdir / >/dev/null
  umoci gc --layout "$dir"
  ;;
start)
  dir=${1:?DIR}; creds=${2:-}
  mkdir -p "$dir/storage"
  port=$(free_port)
  auth=""
  if [ -n "$creds" ]; then
    htpasswd -Bbn "${creds%%:*}" "${creds#*:}" > "$dir/htpasswd"
    auth="auth:
  htpasswd:
    realm: berth-test
    path: $dir/htpasswd"
  fi
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
YML
  docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port $pid"; exit 0; fi
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  echo "registry did not start, log:" >&2; cat "$dir/registry.log" >&2; exit 1
  ;;
seed)
  src=${1:?SRC}; port=${2:?PORT}; ref=${3:?REPO:TAG}; comp=${4:-}
  tag_in=$(basename "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$src/index.json")")
  extra=()
  [ "$comp" = zstd ] && extra=(--dest-compress-format zstd --dest-compress)
  skopeo copy -q --dest-tls-verify=false "${extra[@]}" "oci:$src:$tag_in" "docker://127.0.0.1:$port/$ref"
  ;;
stop)
  kill "${1:?PID}"
  ;;
*)
  echo "unknown command $cmd" >&2; exit 2;;
esac
