"""Block JSON (node/block_json.py) of a real stored chain: serialisable, names the key facts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.block_json import block_summary, block_to_json  # noqa: E402
from node.chain import Chain  # noqa: E402
from node.genesis_files import load_genesis  # noqa: E402
from node.home import NodeHome  # noqa: E402
from node.store import ChainStore  # noqa: E402
from tests.chain_fixture import chain_copy  # noqa: E402


def test_block_json_is_json_and_names_the_block(tmp_path_factory: Any, tmp_path: Path) -> None:
    """block_summary / block_to_json of stored blocks serialise and carry the key facts."""
    home = chain_copy(tmp_path_factory, tmp_path, 3, not_improved_heights=(2,))
    genesis = load_genesis(home)
    store = ChainStore.open(NodeHome(home))
    try:
        chain = Chain(store)
        summaries = []
        for block, cert in chain.committed_range(1, 2):
            height = int(block.height)
            ledger = chain.ledger(height)
            summaries.append(block_summary(block, cert=cert, ledger=ledger, genesis=genesis))
            detail = json.loads(json.dumps(block_to_json(block, cert)))
            assert detail["header"]["height"] == height
            assert detail["commit_certificate"]["block_hash"] == detail["hash"]
        stored_hash = store.get_block(1).hash.hex()  # type: ignore[union-attr]
    finally:
        store.close()
    model, carry = json.loads(json.dumps(summaries))
    assert model["kind"] == "model" and model["updates"] == 4 and model["hash"] == stored_hash
    assert model["commit_signers"] >= 3 and 0.5 < model["metric"]["after"] <= 1.0
    assert model["reputation"] == {f"site-{i}": 10 for i in range(4)}
    row = model["ledger"]["site-1"]
    assert row["accepted"] == 1 and row["rejected"] == 0 and row["reputation"] == 10
    assert row["samples"] > 0 and row["power"] == genesis.validators[1].power
    assert set(row) == {"reputation", "accepted", "rejected", "samples", "epsilon_spent", "power"}
    assert carry["kind"] == "carry-over" and carry["metric"] is None
    assert "not improved" in carry["carry_over_reason"]
