#!/bin/sh
# One-shot set-up of the compose stack (the `setup` service): a home per node on /data and a
# genesis they all share. Idempotent: an existing home or genesis is kept (keys are never rewritten).
# In a real consortium each site runs `bcfl init` itself and sends node_info.json to whoever
# assembles the genesis (see the README's operator guide); here one container plays every site.
set -eu
N="${BCFL_NODES:-4}"
DATASET="${BCFL_DATASET:-breast-cancer}"
i=0
while [ "$i" -lt "$N" ]; do
    home="/data/node$i"
    if [ ! -f "$home/config.toml" ]; then
        bootstrap=""
        if [ "$i" -gt 0 ]; then
            # node0 is every other node's bootstrap peer (compose DNS name, node0's peer id)
            peer_id=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['peer_id'])" /data/node0/node_info.json)
            bootstrap="--bootstrap /dns4/node0/tcp/4001/p2p/$peer_id"
        fi
        # shellcheck disable=SC2086
        bcfl init --home "$home" --name "node$i" --host 0.0.0.0 --port 4001 \
            --api-port 8545 --metrics-port 9100 --dataset "$DATASET" \
            --site-index "$i" --site-count "$N" $bootstrap
        # Prometheus scrapes from its own container: the metrics server must listen on the
        # container's interface (the port is not published to the host).
        python - "$home/config.toml" <<'PY'
import sys, tomllib, tomli_w
path = sys.argv[1]
config = tomllib.load(open(path, "rb"))
config.setdefault("metrics", {})["host"] = "0.0.0.0"
open(path, "wb").write(tomli_w.dumps(config).encode())
PY
    fi
    i=$((i + 1))
done
if [ ! -f /data/genesis.cbor ]; then
    bcfl genesis --out /data/genesis.cbor --dataset "$DATASET" /data/node*/node_info.json
fi
i=0
while [ "$i" -lt "$N" ]; do
    cp /data/genesis.cbor "/data/node$i/genesis.cbor"
    cp /data/genesis.model.safetensors "/data/node$i/genesis.model.safetensors"
    i=$((i + 1))
done
