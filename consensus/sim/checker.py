"""Invariant checker of the consensus simulator (docs/ARCHITECTURE.md, "Testing layers").

The runner reports every commit and every signature an honest validator emits, as it happens,
and the checker keeps just enough state to decide after EVERY step:

- `agreement`: no two different blocks are committed at one height (by anyone, twins included:
  a fork seen by any node is a fork);
- `improvement-certificate`: every committed block that changes the model carries an
  improvement certificate that verifies (>2/3 of the power, valid aggregate signature);
- `honest-double-sign`: no honest validator signs two different messages for one
  (height, round, type);
- `commit-order`: a core commits each height once, in order (its API promise);
- `liveness`: after the network heals, every honest node reaches the target height within the
  virtual-time bound (checked at the end of a run).

A violation names the invariant, the step, the height and the validators involved.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

AGREEMENT = "agreement"
IMPROVEMENT_CERTIFICATE = "improvement-certificate"
HONEST_DOUBLE_SIGN = "honest-double-sign"
LIVENESS = "liveness"
COMMIT_ORDER = "commit-order"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, located precisely enough to replay it from the seed."""

    invariant: str
    step: int
    height: int
    validators: tuple[int, ...]
    detail: str
    seed: int | None = None

    def describe(self) -> str:
        seed = f"seed {self.seed}, " if self.seed is not None else ""
        who = ",".join(str(v) for v in self.validators)
        return (
            f"{self.invariant} violated ({seed}step {self.step}, height {self.height}, "
            f"validators [{who}]): {self.detail}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "seed": self.seed,
            "step": self.step,
            "height": self.height,
            "validators": list(self.validators),
            "detail": self.detail,
        }


@dataclass(slots=True)
class _Committed:
    block_hash: bytes
    node: int
    validator: int | None
    signers: frozenset[int]


@dataclass
class InvariantChecker:
    """Safety state of one run; `violations` grows as invariants break.

    `certificate_problem(block, parent_model_hash)` returns None when a committed block is acceptable for the
    improvement-certificate invariant, else a one-line reason. It is injected so the checker
    re-verifies certificates independently of the cores that committed them.
    """

    certificate_problem: Callable[[Any, bytes], str | None]
    seed: int | None = None
    violations: list[Violation] = field(default_factory=list)
    committed: dict[int, _Committed] = field(default_factory=dict)
    _signed: dict[tuple[int, Hashable], tuple[bytes, int]] = field(default_factory=dict)
    _certified: set[bytes] = field(default_factory=set)
    _forked: set[tuple[int, bytes]] = field(default_factory=set)

    def _add(
        self, invariant: str, step: int, height: int, validators: list[int], detail: str
    ) -> None:
        self.violations.append(
            Violation(invariant, step, height, tuple(sorted(set(validators))), detail, self.seed)
        )

    def on_commit(
        self,
        step: int,
        node: int,
        validator: int | None,
        height: int,
        block_hash: bytes,
        block: Any,
        parent_model_hash: bytes,
        signers: Iterable[int] = (),
    ) -> None:
        """A node committed `block` at `height` on top of a parent with `parent_model_hash`.

        `signers` are the validators in the block's commit certificate.
        """
        first = self.committed.get(height)
        if first is None:
            self.committed[height] = _Committed(block_hash, node, validator, frozenset(signers))
        elif first.block_hash != block_hash and (height, block_hash) not in self._forked:
            # One report per conflicting block: the culprits are the validators whose
            # precommits are in both commit certificates (they signed both blocks).
            self._forked.add((height, block_hash))
            both = sorted(first.signers & set(signers))
            self._add(
                AGREEMENT,
                step,
                height,
                both,
                f"node {first.node} (validator {first.validator}) committed "
                f"{first.block_hash.hex()[:16]} but node {node} (validator {validator}) committed "
                f"{block_hash.hex()[:16]}; validators {both} precommitted both",
            )
        if block_hash not in self._certified:
            problem = self.certificate_problem(block, parent_model_hash)
            if problem is None:
                self._certified.add(block_hash)
            else:
                self._add(
                    IMPROVEMENT_CERTIFICATE,
                    step,
                    height,
                    [validator] if validator is not None else [],
                    f"node {node} committed {block_hash.hex()[:16]}: {problem}",
                )

    def on_signed(
        self,
        step: int,
        validator: int,
        height: int,
        slot: Hashable,
        digest: bytes,
    ) -> None:
        """An honest validator signed a message whose (height, round, type) is `slot`."""
        key = (validator, slot)
        previous = self._signed.get(key)
        if previous is None:
            self._signed[key] = (digest, step)
        elif previous[0] != digest:
            self._add(
                HONEST_DOUBLE_SIGN,
                step,
                height,
                [validator],
                f"honest validator {validator} signed two different messages for {slot!r} "
                f"(first at step {previous[1]})",
            )

    def on_commit_out_of_order(self, step: int, validator: int, height: int, expected: int) -> None:
        """A core emitted Commit for `height` when the next height to commit was `expected`."""
        self._add(
            COMMIT_ORDER,
            step,
            height,
            [validator],
            f"validator {validator} committed height {height}, expected height {expected}",
        )

    def on_liveness_failure(self, step: int, height: int, nodes: list[int], detail: str) -> None:
        """The run ended without every honest node reaching the target height in time."""
        self._add(LIVENESS, step, height, nodes, detail)

    @property
    def safety_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.invariant != LIVENESS]

    @property
    def liveness_failures(self) -> list[Violation]:
        return [v for v in self.violations if v.invariant == LIVENESS]
