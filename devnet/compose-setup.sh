#!/bin/sh
# One-shot set-up of the compose stack (the `setup` service): a home per site, each on its own
# volume mounted at /data/nodeI, a full-mesh bootstrap (every node lists every other node, so
# no single node holds the others together) and one genesis installed in every home.
# Idempotent: an existing home or genesis is kept (keys are never rewritten).
# In a real consortium each site runs `bcfl init` itself and sends node_info.json to whoever
# assembles the genesis (see the README, "One site, one host"); here one container plays every
# site once, and then each node container mounts only its own site's volume.
set -eu
N="${BCFL_NODES:-4}"
DATASET="${BCFL_DATASET:-breast-cancer}"
i=0
while [ "$i" -lt "$N" ]; do
    home="/data/node$i"
    if [ ! -f "$home/config.toml" ]; then
        bcfl init --home "$home" --name "node$i" --host 0.0.0.0 --port 4001 \
            --api-port 8545 --metrics-port 9100 --dataset "$DATASET" \
            --site-index "$i" --site-count "$N"
    fi
    i=$((i + 1))
done
# Full mesh: every node bootstraps from every other (compose DNS names and peer ids). Prometheus
# scrapes from its own container, so the metrics server listens on the container's interface
# (the port is not published to the host).
python - "$N" <<'PY'
import json, sys, tomllib, tomli_w
n = int(sys.argv[1])
infos = [json.load(open(f"/data/node{i}/node_info.json")) for i in range(n)]
for i in range(n):
    path = f"/data/node{i}/config.toml"
    config = tomllib.load(open(path, "rb"))
    config.setdefault("metrics", {})["host"] = "0.0.0.0"
    config.setdefault("network", {})["bootstrap"] = [
        f"/dns4/node{j}/tcp/4001/p2p/{infos[j]['peer_id']}" for j in range(n) if j != i
    ]
    open(path, "wb").write(tomli_w.dumps(config).encode())
PY
if [ ! -f /data/node0/genesis.cbor ]; then
    infos=""
    i=0
    while [ "$i" -lt "$N" ]; do
        infos="$infos /data/node$i/node_info.json"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    bcfl genesis --out /tmp/genesis.cbor --dataset "$DATASET" $infos
    i=0
    while [ "$i" -lt "$N" ]; do
        cp /tmp/genesis.cbor "/data/node$i/genesis.cbor"
        cp /tmp/genesis.model.safetensors "/data/node$i/genesis.model.safetensors"
        i=$((i + 1))
    done
fi
