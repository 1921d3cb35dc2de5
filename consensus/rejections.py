"""The reason of every rejection a candidate or block carries (docs/THREAT-MODEL.md "Forged
rejections").

A proposer that excludes an update names why, one code per rejected receipt, in the same order
(`Candidate.rejection_reasons`, `Block.rejection_reasons`). The candidate id covers the codes,
so an improvement certificate certifies them and the ledger can tell them apart:

- `UNAVAILABLE`: the proposer could not fetch the update. It is not the trainer's fault as far
  as anyone can prove, so it debits nothing, and validators do not re-check it (a validator
  that can fetch the blob cannot show that the proposer could).
- every other code (the validation reasons of learning/validation.py such as "norm-exceeded",
  or "outlier" from screening) is a screening verdict: validators recompute it from the blobs,
  which are content-addressed, and a code that does not reproduce makes their verdict "not
  improved"; the ledger debits the trainer's reputation.

The core checks only the codes' shape (it never sees blobs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

UNAVAILABLE = "unavailable"
"""The proposer could not fetch the update: excluded without a debit."""

MAX_REASON_CODE = 32
"""Longest rejection code, in characters."""

_CODE = re.compile(rf"[a-z][a-z0-9-]{{0,{MAX_REASON_CODE - 1}}}")


def debits(reason: str) -> bool:
    """True when a rejection with this code costs its trainer reputation."""
    return reason != UNAVAILABLE


def reasons_problem(rejected: Sequence[object], reasons: Sequence[str]) -> str | None:
    """Why `reasons` cannot name the rejections of `rejected`, or None: one lower-case code
    (letters, digits, '-', at most MAX_REASON_CODE characters) per rejected receipt."""
    if len(reasons) != len(rejected):
        return f"{len(rejected)} rejected update(s) but {len(reasons)} rejection reason(s)"
    for reason in reasons:
        if not isinstance(reason, str) or _CODE.fullmatch(reason) is None:
            return f"malformed rejection reason {str(reason)[:40]!r}"
    return None
