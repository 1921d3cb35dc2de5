"""`bcfl model export --home DIR [--height H] --out FILE [--format safetensors|onnx]`.

Writes the global model committed at height H (default: the last block; 0: the genesis model)
as the safetensors bytes whose SHA-256 the block header names; the bytes are checked against
that hash before anything is written. A model pruned from the blob store
(`storage.keep_last_models`) cannot be exported from this home: the message says so.

ONNX goes through `torch.onnx.export` (the TorchScript exporter), which needs the `onnx`
package; it is not a bcfl dependency, so without it `--format onnx` says how to get it.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, type=Path, help="node home directory")
    parser.add_argument("--height", type=int, default=None, help="block height (default: last)")
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors")


def committed_model(home: Path, height: int | None) -> tuple[int, bytes]:
    """(height, verified model bytes) of the model committed at `height` (None: the tip)."""
    from node.blobs import BlobCorruptError
    from node.chain import Chain
    from node.commands.chain import open_chain
    from node.genesis_files import GenesisFileError, load_genesis, load_genesis_model

    genesis, store = open_chain(home)
    try:
        chain = Chain(store)
        tip = chain.height
        height = tip if height is None else height
        if not 0 <= height <= tip:
            raise UserError(
                f"height {height} is not committed here; this node's chain ends at height {tip}"
            )
        if height == 0:
            if genesis is None:
                load_genesis(home)  # raises the one-sentence reason
            try:
                return 0, load_genesis_model(home, genesis)
            except GenesisFileError as exc:
                raise UserError(str(exc)) from None
        block = chain.block(height)
        assert block is not None  # noqa: S101 - checked against the tip above
        model_hash = block.header.model_hash
        try:
            data = chain.blob(model_hash)
        except BlobCorruptError:
            raise UserError(
                f"the stored model of height {height} was altered on disk (its hash no longer "
                "matches the block); run `bcfl chain verify`"
            ) from None
    finally:
        store.close()
    if data is None:
        raise UserError(
            f"the model of height {height} ({model_hash.hex()[:16]}) was pruned from this "
            "node's blob store; raise storage.keep_last_models or export from another node"
        )
    return height, data


def _to_onnx(home: Path, model_bytes: bytes, out: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise UserError(
            "ONNX export needs the `onnx` package (pip install onnx); "
            "--format safetensors always works"
        )
    import torch

    from learning import bytes_to_weights
    from learning.models import build_model, load_weights
    from node.genesis_files import genesis_task, load_genesis

    task = genesis_task(load_genesis(home))
    model = build_model(task)
    load_weights(model, bytes_to_weights(model_bytes))
    model.eval()
    example = torch.zeros(1, task.n_features)
    torch.onnx.export(model, (example,), str(out), dynamo=False)


def run(args: argparse.Namespace) -> int:
    from node.fsutil import atomic_write

    height, data = committed_model(args.home, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "onnx":
        _to_onnx(args.home, data, args.out)
    else:
        atomic_write(args.out, data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"wrote {args.out}: model of height {height} ({len(data)} bytes, sha256 {digest})")
    return 0
