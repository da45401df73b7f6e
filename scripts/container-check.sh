#!/usr/bin/env bash
# Builds the CPU image (deploy/Dockerfile) with rootful podman, runs it with an empty model volume,
# waits for its HEALTHCHECK to pass, sends one chat request to the built-in demo model it then
# serves, and stops it (the server drains on SIGTERM and must exit 0). `npm run test:container`;
# not in `npm test`: it needs root, podman and ~10-30 minutes (docs/SCALE-OUT.md has a run).
#
# Pulls nothing. When docker.io/library/node:20-bookworm-slim is not in podman's storage (no
# registry reachable), a stand-in is built under that name, so deploy/Dockerfile stays what a user
# builds with Docker: Debian bookworm minbase (debootstrap, from the Debian mirror) with this
# machine's Node 20 (node, npm) in /usr/local and a user `node` (uid 1000), as in the real image.
#
# VLLAMA_CHECK_PORT: host port the container's 11434 is published on (default 11534).
# A host where containers cannot start as configured takes podman's own settings file,
# CONTAINERS_CONF=file. The build machine of 2026-12-02 (a VM without CAP_SYS_RESOURCE, cgroups
# v1 + v2 hybrid, which crun 1.8 refuses) needed runc and limits no higher than its own:
#   [containers]
#   default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
#   [engine]
#   runtime = "runc"
set -euo pipefail
cd "$(dirname "$0")/.."

base=docker.io/library/node:20-bookworm-slim
image=localhost/vllama:container-check
name=vllama-container-check
volume=vllama-container-check-models
port=${VLLAMA_CHECK_PORT:-11534}

fail() { echo "container-check: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (rootful podman)"
command -v podman > /dev/null || fail "podman is not installed (apt-get install -y podman)"

build_base_standin() {
  command -v debootstrap > /dev/null || fail "no $base and no debootstrap to build its stand-in (apt-get install -y debootstrap)"
  [[ "$(node -p process.versions.node)" == 20.* ]] || fail "the stand-in needs this machine's node to be Node 20"
  rootfs=$(mktemp -d /var/tmp/node-base.XXXXXX)
  debootstrap --variant=minbase --include=passwd bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  install -D "$(command -v node)" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$(npm root -g)/npm" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' - "$base"
  rm -rf "$rootfs"
}

rootfs=""
npmrc=""
cleanup() {
  [ -z "$rootfs" ] || rm -rf "$rootfs"
  [ -z "$npmrc" ] || rm -f "$npmrc"
  podman rm -f "$name" > /dev/null 2>&1 || true
  podman volume rm -f "$volume" > /dev/null 2>&1 || true
}
trap cleanup EXIT

if ! podman image exists "$base"; then
  echo "container-check: building a stand-in for $base (debootstrap + this machine's Node $(node -v))"
  build_base_standin
fi

# Behind a TLS-inspecting proxy (this machine's egress, 2026-12-02: npm install in the build failed
# with SELF_SIGNED_CERT_IN_CHAIN) the build's npm must trust what this machine's Node trusts
# (NODE_EXTRA_CA_CERTS): the certificates and an npm user config naming them are mounted into the
# build's RUN steps, not copied into any layer.
ca_mounts=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
  npmrc=$(mktemp /tmp/container-check-npmrc.XXXXXX)
  echo "cafile=/tmp/host-ca-certificates.crt" > "$npmrc"
  ca_mounts=(--volume "$NODE_EXTRA_CA_CERTS:/tmp/host-ca-certificates.crt:ro" --volume "$npmrc:/root/.npmrc:ro")
fi

started=$(date +%s)
# --format docker: the OCI image format has no HEALTHCHECK. --network host: the build's npm install
# and apt-get reach their registries through this machine's network.
podman build --pull=never --format docker --network host "${ca_mounts[@]}" -f deploy/Dockerfile -t "$image" .
build_s=$(( $(date +%s) - started ))
size=$(podman image inspect --format '{{.Size}}' "$image")

cleanup
podman run -d --name "$name" -p "127.0.0.1:$port:11434" -v "$volume:/models" "$image" > /dev/null
run_started=$(date +%s)
until health=$(podman healthcheck run "$name" 2>&1); do
  [ "$(( $(date +%s) - run_started ))" -lt 180 ] || { podman logs "$name" | tail -20; fail "not healthy after 180 s ($health)"; }
  [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || { podman logs "$name" | tail -20; fail "the container exited"; }
  sleep 2
done
healthy_s=$(( $(date +%s) - run_started ))
uid=$(podman exec "$name" id -u)
[ "$uid" != 0 ] || fail "the server runs as root"

# One request from outside the container, through the published port: the demo model answers.
answer=$(node -e '
  fetch(process.argv[1], { method: "POST", body: JSON.stringify({ model: "vllama-demo", stream: false,
    messages: [{ role: "user", content: "hi" }], options: { num_predict: 8 } }) })
    .then(async (r) => { const body = await r.json();
      if (!r.ok || body.done !== true || !body.message?.content) throw new Error(`${r.status} ${JSON.stringify(body)}`);
      console.log(`${body.model}: ${body.eval_count} tokens, ${JSON.stringify(body.message.content)}`); })
    .catch((e) => { console.error(e.message); process.exit(1); });' "http://127.0.0.1:$port/api/chat") \
  || { podman logs "$name" | tail -20; fail "the chat request failed"; }

podman stop -t 40 "$name" > /dev/null
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$exit_code" = 0 ] || { podman logs "$name" | tail -20; fail "exit code $exit_code after SIGTERM"; }

echo "container-check: passed $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "  image $image: $(( size / 1000000 )) MB, built in ${build_s} s ($(podman info --format '{{.Store.GraphDriverName}}') storage)"
echo "  healthy after ${healthy_s} s, uid $uid; POST /api/chat -> $answer"
echo "  SIGTERM: drained and exited 0"
