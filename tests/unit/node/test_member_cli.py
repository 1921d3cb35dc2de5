"""`bcfl member`: arguments, one-sentence errors, and the request it sends to the node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.cli import main


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("bcfl: error: ") and "\n" not in err, err
    return err


def test_bad_inputs_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["member", "list", "--home", str(tmp_path)]) == 2
    assert "is not a node home" in _error(capsys)
    assert main(["member", "propose", "--home", str(tmp_path), "add", "missing.json"]) == 2
    assert "cannot read node info missing.json" in _error(capsys)
    bad = tmp_path / "info.json"
    bad.write_text(json.dumps({"name": "x", "peer_id": "nope"}))
    assert main(["member", "propose", "add", str(bad)]) == 2
    assert "is not a libp2p peer id" in _error(capsys)


def test_propose_sends_the_change_to_the_local_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import node.commands.member as member

    sent: list[tuple[str, Any]] = []

    def fake_request(home: Path, path: str, body: Any = None) -> Any:
        sent.append((path, body))
        return {"proposal_id": "ab" * 32, "kind": body["kind"], "target": body["target"]}

    monkeypatch.setattr(member, "request", fake_request)
    assert main(["member", "propose", "--home", ".", "power", "st-marys", "3"]) == 0
    assert sent == [("/members/propose", {"kind": "power", "target": "st-marys", "power": 3})]
    assert "proposed power st-marys" in capsys.readouterr().out
