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
