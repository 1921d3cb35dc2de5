"""`bcfl report`: a PNG with the four panels from per-block dicts or devnet JSON."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from node.cli import main
from telemetry.report import (
    ReportError,
    block_intervals,
    blocks_from_json,
    draw_report,
    synthetic_blocks,
)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_draw_report_writes_a_png_of_sensible_size(tmp_path: Path) -> None:
    """30 synthetic blocks give a 1200x800 PNG of more than 30 KB."""
    out = draw_report(synthetic_blocks(30), tmp_path / "r" / "report.png")
    assert _png_size(out) == (1200, 800)
    assert out.stat().st_size > 30_000


def test_cli_plots_blocks_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bcfl report --blocks-json FILE --out FILE.png exits 0 and says what it wrote."""
    source = tmp_path / "blocks.json"
    source.write_text(json.dumps(synthetic_blocks(12)))
    out = tmp_path / "report.png"
    assert main(["report", "--blocks-json", str(source), "--out", str(out)]) == 0
    assert _png_size(out)[0] == 1200
    assert "12 blocks" in capsys.readouterr().out


def test_devnet_json_output_is_accepted_and_intervals_come_from_phases() -> None:
    """`bcfl devnet up --json` blocks (no time) use phases.block_interval."""
    devnet = {
        "blocks": [
            {"height": 2, "metric": 0.9, "carry_over": False, "phases": {"block_interval": 1.5}},
            {"height": 1, "metric": 0.8, "carry_over": True, "phases": {"block_interval": 2.0}},
        ]
    }
    blocks = blocks_from_json(devnet)
    assert [b["height"] for b in blocks] == [1, 2]
    assert block_intervals(blocks) == [(1, 2.0), (2, 1.5)]


def test_header_times_give_the_block_interval() -> None:
    """With header times the interval is the difference between consecutive blocks."""
    blocks = blocks_from_json([{"height": 1, "time": 10.0}, {"height": 2, "time": 12.5}])
    assert block_intervals(blocks) == [(2, 2.5)]


@pytest.mark.parametrize("value", [{"nodes": []}, [{"metric": 1.0}], [{"height": "1"}], 3])
def test_malformed_input_is_a_report_error(value: object) -> None:
    """Missing blocks or heights raise ReportError (a one-sentence user error)."""
    with pytest.raises(ReportError):
        blocks_from_json(value)


def test_cli_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A home with no chain and a non-PNG output exit 2 with a message."""
    assert main(["report", "--home", str(tmp_path), "--out", str(tmp_path / "r.png")]) == 2
    assert main(["report", "--home", str(tmp_path), "--out", str(tmp_path / "r.jpg")]) == 2
    err = capsys.readouterr().err
    assert "no chain to plot" in err and ".png" in err
