"""`bcfl devnet up --json` per-node `rejections`: reason -> count from a node's /metrics page."""

from __future__ import annotations

from devnet.summary import rejections_of

PAGE = """\
# HELP bcfl_gossip_rejected_total Gossip messages dropped by validation, by topic and reason.
bcfl_gossip_rejected_total{topic="consensus",reason="bad-signature"} 3.0
bcfl_gossip_rejected_total{topic="receipts",reason="bad-signature"} 2.0
bcfl_gossip_rejected_total{topic="receipts",reason="oversized"} 0.0
bcfl_gossip_rejected_created{topic="receipts",reason="oversized"} 1.7e+09
bcfl_consensus_rejected_total{reason="untimely-proposal"} 4.0
bcfl_updates_rejected_total{reason="outlier"} 9.0
"""


def test_rejections_sum_the_gossip_edge_and_the_core_by_reason() -> None:
    """Gossip reasons are summed over topics, core reasons added, zeros and others left out."""
    assert rejections_of(PAGE) == {"bad-signature": 5, "untimely-proposal": 4}


def test_inbound_totals_sum_only_what_came_in() -> None:
    """The benches' per-node traffic: samples labelled direction="in", summed over labels."""
    from devnet.summary import inbound_totals

    page = "\n".join(
        [
            'bcfl_gossip_messages_total{node="n",topic="a",direction="in"} 3.0',
            'bcfl_gossip_messages_total{node="n",topic="b",direction="in"} 4.0',
            'bcfl_gossip_messages_total{node="n",topic="b",direction="out"} 9.0',
            'bcfl_gossip_bytes_total{node="n",topic="b",direction="in"} 100.0',
            "# HELP bcfl_gossip_bytes_total bytes",
        ]
    )
    names = ("bcfl_gossip_messages_total", "bcfl_gossip_bytes_total", "bcfl_absent_total")
    assert inbound_totals(page, names) == [7.0, 100.0, 0.0]
