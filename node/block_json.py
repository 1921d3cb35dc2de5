"""Committed blocks as JSON: the HTTP API's `/chain` and `/chain/<H>`, `bcfl chain show`.

Pure functions of decoded consensus values (read them with `node.chain.Chain`); bytes are
lowercase hex, member indices also appear as genesis names where a genesis is given.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

from consensus.codec import block_hash
from consensus.types import Block, CommitCertificate, Genesis, Ledger, UpdateReceipt


def _member_name(genesis: Genesis | None, index: int, ledger: Ledger | None = None) -> str:
    members = ledger.members if ledger is not None and ledger.members else ()
    if not members and genesis is not None:
        members = genesis.validators
    if 0 <= index < len(members):
        return members[index].name
    return f"member-{index}"


def block_metric(block: Block) -> dict[str, Any] | None:
    """Median `metric_after` of the block's eval reports (None for a carry-over block).

    Reports name the metric they hold; the median is over the reports of the most common name
    (a one-class site's loss is not mixed into the others' AUC), which "metric_name" gives.
    """
    if not block.eval_reports:
        return None
    names = Counter(r.metric_name for r in block.eval_reports)
    name = min(names, key=lambda n: (-names[n], n))
    reports = [r for r in block.eval_reports if r.metric_name == name]
    return {
        "after": median(r.metric_after for r in reports),
        "before": median(r.metric_before for r in reports),
        "reports": len(reports),
        "metric_name": name,
    }


def block_summary(
    block: Block,
    *,
    block_hash_: bytes | None = None,
    cert: CommitCertificate | None = None,
    ledger: Ledger | None = None,
    genesis: Genesis | None = None,
) -> dict[str, Any]:
    """One line of `/chain`: a JSON-able summary of a committed block.

    Keys: height, hash, round, time_ms, proposer, proposer_name, kind ("model"|"carry-over"),
    model_hash, updates (accepted receipts), rejected, carry_over_reason, evidence,
    commit_signers (None without `cert`), metric (median eval report, None when carry-over),
    reputation ({name: value}, only with `ledger`), ledger ({name: {reputation, accepted,
    rejected, samples, epsilon_spent, power}} after this block, only with `ledger`; power is
    the power in the member set that committed the block); with `ledger`, `validators` (names
    of the members with power in the set that committed the block, consensus/governance.py) and,
    with `cert` too, `commit_signer_names`.
    """
    header = block.header
    signers = None
    if cert is not None:
        signers = sum(bin(b).count("1") for b in cert.signers)
    summary: dict[str, Any] = {
        "height": int(header.height),
        "hash": (block_hash_ or block_hash(block)).hex(),
        "round": int(header.round),
        "time_ms": header.time_ms,
        "proposer": int(header.proposer),
        "proposer_name": _member_name(genesis, header.proposer, ledger),
        "kind": "carry-over" if block.is_carry_over else "model",
        "model_hash": header.model_hash.hex(),
        "updates": len(block.receipts),
        "rejected": len(block.rejected),
        "carry_over_reason": block.carry_over_reason or None,
        "evidence": len(block.all_evidence),
        "commit_signers": signers,
        "metric": block_metric(block),
    }
    if ledger is not None:
        members = ledger.members or (genesis.validators if genesis is not None else ())
        summary["validators"] = [m.name for m in members if m.power > 0]
        if cert is not None and members:
            from consensus.validators import ValidatorSet

            indices = ValidatorSet(members).indices(cert.signers) or []
            summary["commit_signer_names"] = [members[i].name for i in indices]
        summary["reputation"] = {
            _member_name(genesis, i, ledger): rec.reputation
            for i, rec in enumerate(ledger.participants)
        }
        summary["ledger"] = {
            _member_name(genesis, i, ledger): {
                "reputation": rec.reputation,
                "accepted": rec.accepted_updates,
                "rejected": rec.rejected_updates,
                "samples": rec.samples_contributed,
                "epsilon_spent": rec.epsilon_spent,
                "power": members[i].power if i < len(members) else None,
            }
            for i, rec in enumerate(ledger.participants)
        }
    return summary


def _receipt_json(receipt: UpdateReceipt) -> dict[str, Any]:
    return {
        "author": int(receipt.author),
        "height": int(receipt.height),
        "base_model_hash": receipt.base_model_hash.hex(),
        "blob_hash": receipt.blob_hash.hex(),
        "n_samples": receipt.n_samples,
        "train_loss": receipt.train_loss,
        "epsilon_spent": receipt.epsilon_spent,
        "signature": receipt.signature.hex(),
    }


def _cert_json(cert: CommitCertificate | None) -> dict[str, Any] | None:
    if cert is None:
        return None
    return {
        "height": int(cert.height),
        "round": int(cert.round),
        "block_hash": cert.block_hash.hex(),
        "signers": cert.signers.hex(),
        "aggregate_signature": cert.aggregate_signature.hex(),
    }


def block_to_json(block: Block, cert: CommitCertificate | None) -> dict[str, Any]:
    """`/chain/<H>`: the whole block (and its commit certificate) as JSON; bytes are hex."""
    header = block.header
    improvement = block.improvement_certificate
    return {
        "hash": block_hash(block).hex(),
        "header": {
            "chain_id": header.chain_id,
            "height": int(header.height),
            "round": int(header.round),
            "time_ms": header.time_ms,
            "parent_hash": header.parent_hash.hex(),
            "proposer": int(header.proposer),
            "model_hash": header.model_hash.hex(),
            "updates_root": header.updates_root.hex(),
            "last_commit_hash": header.last_commit_hash.hex(),
            "ledger_root": header.ledger_root.hex(),
        },
        "receipts": [_receipt_json(r) for r in block.receipts],
        "rejected": [_receipt_json(r) for r in block.rejected],
        "rule": block.rule,
        "improvement_certificate": None
        if improvement is None
        else {
            "candidate_hash": improvement.candidate_hash.hex(),
            "signers": improvement.signers.hex(),
            "aggregate_signature": improvement.aggregate_signature.hex(),
        },
        "eval_reports": [
            {
                "evaluator": int(r.evaluator),
                "candidate_hash": r.candidate_hash.hex(),
                "n_samples": r.n_samples,
                "loss_before": r.loss_before,
                "loss_after": r.loss_after,
                "metric_before": r.metric_before,
                "metric_after": r.metric_after,
                "metric_name": r.metric_name,
            }
            for r in block.eval_reports
        ],
        "carry_over_reason": block.carry_over_reason,
        "last_commit": _cert_json(block.last_commit),
        "evidence": [
            {
                "kind": e.kind,
                "validator": e.offence[0],
                "height": e.offence[1],
                "round": e.offence[2],
                "vote_type": e.offence[3],
            }
            for e in block.all_evidence
        ],
        "commit_certificate": _cert_json(cert),
    }
