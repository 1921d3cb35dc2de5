"""The node's learning side: what the consensus core's app actions mean on this site's data.

`LearningApp` answers the core's `StartTraining`, `BuildCandidate` and `EvaluateCandidate`
with `learning/` calls. Its methods are synchronous and CPU-bound; the driver runs them in a
worker thread (never on the event loop) after it has fetched every blob they need, so this
module does no network I/O and reads only the site's own data.

Choices (docs/ARCHITECTURE.md "Proof of learning" is silent on them):
- An update blob is a delta (learning/). The proposer rejects, with a named reason, an update
  that fails `validate_update` or could not be fetched; the rest are aggregated with the
  genesis rule. Every validator recomputes that aggregation from the same blobs and attests
  "not improved" when its bytes differ from the candidate's model hash. Under secure
  aggregation the learning worker recomputes the candidate from the masked blobs and the
  transcript (node/services/secagg_round.py) and only `judge`s it here.
- A validator's verdict compares the base model and the candidate on its private validation
  split with the genesis verdict rule; the numbers go into its `EvalReport`, whose
  `metric_name` says which metric decided (the rule's, or the loss where the rule's metric is
  undefined on this split, e.g. AUC on a one-class site).
- Differential privacy follows the genesis policy alone (`Genesis.privacy`; the site's config
  has no DP knobs): the site clips its update, adds Gaussian noise from the OS CSPRNG
  (`learning.privatize_update`) and stops contributing once its next release would pass the
  budget (`TrainingOutcome.skipped` "dp-budget"). Its release count is the larger of the
  ledger's (chain state, handed in with the training request) and its own durable count
  (`ReleaseLog`, written before the update leaves the site), which also counts releases whose
  height ended in a carry-over block; `epsilon_spent` is the accountant's epsilon after this
  release, whose increment over the ledger's the core puts in the receipt.
- Before aggregating, the proposer screens the valid updates against their coordinate-wise
  median and rejects outliers (`learning.screening`: sign-flipped or far too long), so one
  poisoned site costs its own update (and reputation), not the whole height.
- The "poison" test behaviour sign-flips this site's update (global - 5 x delta), exactly the
  attack of `bcfl simulate learning --attack signflip`.
- The "drift" test behaviour adds Gaussian noise of the update's own norm to it (cosine about
  0.7 with the honest direction, norm about 1.4 x: it passes screening) so every aggregate it
  joins is a little worse; "forge-rejection" makes this site, when it proposes, reject the first
  honest update it accepted as an "outlier" (docs/THREAT-MODEL.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import learning
from consensus.privacy import Accountant, PrivacyRules
from consensus.rejections import debits
from consensus.types import EvalReport, Genesis, Hash, UpdateReceipt, ValidatorIndex
from learning.screening import screen_outliers
from learning.serialize import Blob, source_hash
from node.config import NodeConfig
from node.fsutil import atomic_write
from node.home import NodeHome

log = logging.getLogger("bcfl.app")

MAX_UPDATE_NORM = 1e4
"""Updates whose L2 norm exceeds this are rejected as "norm-exceeded" (a sane, wide bound)."""


class DataConfigError(Exception):
    """The site's data could not be loaded (one sentence, names the file or the key)."""


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    """What local training produced for one height."""

    update: bytes | bytearray | None  # None: this site did not contribute (DP budget, no data)
    n_samples: int
    train_loss: float
    epsilon_spent: float
    seconds: float
    skipped: str = ""


@dataclass(frozen=True, slots=True)
class CandidateOutcome:
    """The proposer's aggregation of the updates it could fetch and validate."""

    model: bytes | bytearray | None  # None when no update survived
    accepted: tuple[UpdateReceipt, ...]
    rejected: tuple[tuple[UpdateReceipt, str], ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A validator's verdict on a candidate, with the recomputed model bytes when they match."""

    improved: bool
    report: EvalReport
    model: bytes | bytearray | None
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    refusal: str = ""


def _device(setting: str) -> str:
    """`training.device`: "auto" is cuda where a GPU is visible, else the CPU."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sha256(data: Blob) -> Hash:
    """The blob's id; a file is hashed a piece at a time."""
    if isinstance(data, bytes | bytearray):
        return Hash(hashlib.sha256(data).digest())
    return Hash(source_hash(data))


class ReleaseLog:
    """This site's count of DP releases, durable (fsync) before an update leaves the site."""

    def __init__(self, path: Path, chain_id: str) -> None:
        self.path = path
        self.chain_id = chain_id
        self.count = 0
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise DataConfigError(f"cannot read the DP release count {path}: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("releases"), int):
            raise DataConfigError(f"{path} is not a DP release count; restore it or remove it")
        if raw.get("chain_id") == chain_id:
            self.count = max(0, raw["releases"])

    def record(self, count: int) -> None:
        """Make `count` releases durable."""
        body = json.dumps({"chain_id": self.chain_id, "releases": count}).encode()
        atomic_write(self.path, body, mode=0o600)
        self.count = count


class LearningApp:
    """Local training, candidate building and evaluation for one site."""

    def __init__(
        self,
        genesis: Genesis,
        config: NodeConfig,
        home: Path,
        me: ValidatorIndex | None,
        accountant: Accountant | None = None,
    ) -> None:
        try:
            self.task = learning.TaskSpec.from_dict(genesis.task)
            self.rule = learning.AggregationRule(
                name=genesis.aggregation_rule, **genesis.aggregation_params
            )
            self.verdict = learning.VerdictRule(
                metric=genesis.verdict_rule.metric,
                noise_margin=genesis.verdict_rule.noise_margin,
                max_regression=genesis.safeguards.max_regression,
            )
        except (learning.TaskError, ValueError, TypeError) as exc:
            raise DataConfigError(f"the genesis task or rules are not usable here: {exc}") from None
        try:
            self.plugin = learning.check_installed(self.task)
        except learning.TaskError as exc:
            raise DataConfigError(str(exc)) from None
        self.me = me
        self.config = config
        self.data = self._load_data(config, home)
        t = config.training
        self.train_config = learning.TrainConfig(
            epochs=t.local_epochs,
            batch_size=t.batch_size,
            lr=t.learning_rate,
            optimizer=t.optimizer,
            fedprox_mu=t.fedprox_mu,
            threads=t.torch_threads,
            seed=config.data.seed,
            device=_device(t.device),
        )
        self.policy = genesis.privacy
        if self.policy.dp_enabled and accountant is None:
            accountant = learning.PolicyAccountant(self.policy.noise_multiplier, self.policy.delta)
        self.privacy = PrivacyRules(self.policy, accountant)
        self.releases = ReleaseLog(NodeHome(home).dp_releases_path, genesis.chain_id)
        self.poison = config.byzantine.behaviour == "poison"
        self.drift = config.byzantine.behaviour == "drift"
        self.forge_rejection = config.byzantine.behaviour == "forge-rejection"
        self._eval_cache: dict[bytes, dict[str, float]] = {}
        self._verdicts: dict[bytes, str] = {}  # (base hash, update hash) -> validate_update
        # the best certified model's metrics on our split: every base we are asked to judge a
        # candidate against is a committed model (docs/THREAT-MODEL.md "Slow drift")
        self.best_certified: dict[str, float] | None = None
        self._lock = threading.Lock()  # torch thread settings are process-wide

    def _load_data(self, config: NodeConfig, home: Path) -> learning.SiteData:
        d = config.data
        try:
            if d.csv or d.path:
                path = Path(d.csv or d.path)
                path = path if path.is_absolute() else home / path
                own = self.plugin.load_site(self.task, path)
                return learning.split_train_val(own, seed=d.seed)
            if d.builtin not in (self.task.dataset, self.task.entry_point):
                raise DataConfigError(
                    f"data.builtin is {d.builtin!r} but the genesis task trains on "
                    f"{self.task.dataset!r}; set data.builtin to {self.task.dataset!r}"
                )
            return learning.site_data(self.task, d.site_index, d.site_count, d.partition, d.seed)
        except learning.DataError as exc:
            raise DataConfigError(str(exc)) from None

    def train(
        self, base_model: Blob, height: int, ledger_releases: int = 0, exhausted: bool = False
    ) -> TrainingOutcome:
        """Train the global model on this site's data for one height.

        `ledger_releases` and `exhausted` are the ledger's view of this site's DP releases.
        """
        release = max(self.releases.count, ledger_releases) + 1
        epsilon = self.privacy.epsilon_after(release)
        if self.privacy.enabled and (exhausted or self.privacy.over_budget(epsilon)):
            spent = self.privacy.epsilon_after(release - 1)
            return TrainingOutcome(None, 0, float("nan"), spent, 0.0, "dp-budget")
        if len(self.data.train) == 0:
            return TrainingOutcome(None, 0, float("nan"), 0.0, 0.0, "no-data")
        config = self.train_config.with_seed(self.config.data.seed * 1_000_003 + height)
        with self._lock:
            update, n, stats = learning.train(self.task, base_model, self.data.train, config)
        if self.poison:
            update = learning.attack_update("signflip", base_model, update, seed=height)
        if self.drift:
            update = learning.attack_update("drift", base_model, update, seed=height)
        if self.privacy.enabled:
            update = learning.privatize_update(  # this site's share of the noise
                update, self.policy.clip_norm, self.policy.site_noise_multiplier
            )
            self.releases.record(release)
        return TrainingOutcome(update, n, stats.loss_last_epoch, epsilon, stats.seconds)

    def build_candidate(
        self, base_model: Blob, updates: Sequence[tuple[UpdateReceipt, Blob | None]]
    ) -> CandidateOutcome:
        """Validate each fetched update and aggregate the good ones (None bytes: unavailable)."""
        accepted, rejected = self._screen(base_model, updates)
        if self.forge_rejection:
            victim = next((i for i, (r, _) in enumerate(accepted) if r.author != self.me), None)
            if victim is not None:
                receipt = accepted.pop(victim)[0]
                rejected.append((receipt, "outlier"))
                log.warning("forge-rejection: rejecting member %d's update", receipt.author)
        model = self._aggregate(base_model, accepted) if accepted else None
        return CandidateOutcome(model, tuple(r for r, _ in accepted), tuple(rejected))

    def _screen(
        self, base_model: Blob, updates: Sequence[tuple[UpdateReceipt, Blob | None]]
    ) -> tuple[list[tuple[UpdateReceipt, Blob]], list[tuple[UpdateReceipt, str]]]:
        """The honest verdicts on `updates`: (accepted, in order; rejected with reasons)."""
        accepted: list[tuple[UpdateReceipt, Blob]] = []
        rejected: list[tuple[UpdateReceipt, str]] = []
        base = sha256(base_model)
        for receipt, blob in updates:
            reason = "unavailable" if blob is None else self._check(base, base_model, blob)
            if reason or blob is None:
                rejected.append((receipt, reason or "unavailable"))
            else:
                accepted.append((receipt, blob))
        verdicts = screen_outliers([blob for _, blob in accepted])
        rejected += [(r, v) for (r, _), v in zip(accepted, verdicts, strict=True) if v]
        return [item for item, v in zip(accepted, verdicts, strict=True) if not v], rejected

    def forged_rejection(
        self,
        base_model: Blob,
        updates: Sequence[tuple[UpdateReceipt, Blob | None]],
        rejected: Sequence[tuple[UpdateReceipt, Blob | None, str]],
    ) -> bool:
        """True when a screening rejection (every reason but "unavailable") does not reproduce:
        our own validation and screening of all the candidate's screened updates gives that
        update another verdict than the reason the proposer put in the candidate (both are
        deterministic given the content-addressed blobs). Screening only: the model itself is
        aggregated once, by the caller."""
        screened = [(r, blob, why) for r, blob, why in rejected if debits(why)]
        _, verdicts_now = self._screen(base_model, [*updates, *((r, b) for r, b, _ in screened)])
        verdicts = {bytes(r.blob_hash): why for r, why in verdicts_now}
        return any(verdicts.get(bytes(r.blob_hash)) != why for r, _, why in screened)

    def _check(self, base: Hash, base_model: Blob, blob: Blob) -> str:
        """validate_update's verdict ("" for valid), remembered by the hashes of the base model
        (`base`) and of the update's bytes: a candidate's updates are validated again when its
        rejections are re-checked (`forged_rejection`) and, at the proposer, once to build the
        candidate and once to judge it; hashing a blob costs far less than validating it."""
        key = bytes(base) + bytes(sha256(blob))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = learning.validate_update(self.task, base_model, blob, MAX_UPDATE_NORM) or ""
            if len(self._verdicts) > 1024:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def _aggregate(
        self, base_model: Blob, accepted: Sequence[tuple[UpdateReceipt, Blob]]
    ) -> bytearray:
        items = [(r.blob_hash, blob, r.n_samples) for r, blob in accepted]
        return learning.aggregate(self.rule, base_model, items)

    def evaluate_candidate(
        self,
        base_model: Blob,
        candidate_hash: Hash,
        model_hash: Hash,
        updates: Sequence[tuple[UpdateReceipt, Blob | None]],
        rejected: Sequence[tuple[UpdateReceipt, Blob | None, str]] | None = None,
    ) -> Evaluation:
        """Recompute the candidate from its updates and judge it on the local validation split.

        `rejected` are the updates the proposer excluded with a screening reason (those it
        called "unavailable" debit nothing and are not re-checked), with that reason: each must
        reproduce here with the same reason among all the candidate's screened updates, else the
        verdict is "not improved", so a proposer cannot drop an honest site and debit its
        reputation (docs/THREAT-MODEL.md "Forged rejections").
        """
        refusal = ""
        model: bytearray | None = None
        base = sha256(base_model)
        if any(blob is None for _, blob in updates):
            refusal = "update blob unavailable"
        elif any(self._check(base, base_model, blob) for _, blob in updates if blob is not None):
            refusal = "candidate includes an invalid update"
        elif rejected and self.forged_rejection(base_model, updates, rejected):
            refusal = "a rejection does not reproduce"
        else:
            model = self._aggregate(base_model, [(r, b) for r, b in updates if b is not None])
            if sha256(model) != model_hash:
                refusal, model = "aggregation mismatch", None
        return self.judge(base_model, candidate_hash, model, refusal)

    def judge(
        self, base_model: bytes, candidate_hash: Hash, model: bytes | None, refusal: str
    ) -> Evaluation:
        """The verdict on a recomputed candidate `model` (None: refused, `refusal` says why)."""
        before = self.metrics_of(base_model)
        self.best_certified = learning.best_of(self.best_certified, before, self.verdict)
        after = self.metrics_of(model) if model is not None else dict(before)
        verdict = model is not None and learning.improved(
            before, after, self.verdict, best=self.best_certified
        )
        metric = learning.verdict_metric(before, after, self.verdict)
        report = EvalReport(
            evaluator=ValidatorIndex(self.me if self.me is not None else 0),
            candidate_hash=candidate_hash,
            n_samples=len(self.data.val),
            loss_before=float(before.get("loss", 0.0)),
            loss_after=float(after.get("loss", 0.0)),
            metric_before=float(before.get(metric, 0.0)),
            metric_after=float(after.get(metric, 0.0)),
            metric_name=metric,
        )
        return Evaluation(verdict, report, model, before, after, refusal)

    def metrics_of(self, model: Blob) -> dict[str, float]:
        """Validation metrics of a model on this site's split (cached by model hash)."""
        key = sha256(model)
        cached = self._eval_cache.get(key)
        if cached is None:
            with self._lock:
                cached = learning.evaluate(self.task, model, self.data.val)
            if len(self._eval_cache) > 64:
                self._eval_cache.clear()
            self._eval_cache[key] = cached
        return cached
