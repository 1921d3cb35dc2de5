"""The in-process federation simulator behind `bcfl simulate learning`.

N sites in one process share a built-in data set split by a partitioner. Each round:
1. every contributing site trains the global model on its private training split; Byzantine
   sites (the first COUNT sites of `--attack KIND:COUNT`) poison their update;
   a DP site clips and noises its update and stops contributing when its budget is spent;
2. updates are validated (rejections are recorded with their reason) and aggregated with the rule;
   with `secure_aggregation` the sites run one session of learning/secagg per round (masked,
   quantised updates; the aggregate is the exact sum, unmasked) and the candidate is the mean;
   the last `secagg_dropouts` contributors go silent after masking and are recovered from shares;
3. every site evaluates the current model and the candidate on its private validation split and
   attests `improved(before, after, verdict)`; Byzantine sites always attest "improved" (the worst
   case for the gate);
4. the candidate is accepted only with "improved" attestations from strictly more than 2/3 of the
   sites (the chain's rule), else the previous model is kept. `gate=False` accepts every
   candidate, to show what the gate prevents.

Two baselines are computed in the same run on the same held-out global test split: `centralized`
(one model trained on the pooled training data for rounds x local epochs) and `local_only` (the
mean of the metrics of models each trained on one honest site's data for as long). The result is
a plain dict, identical for identical arguments (no timings in it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from learning.aggregate import AggregationRule, aggregate
from learning.attacks import attack_update
from learning.data import Split
from learning.dp import DpConfig, PrivacyBudget, noise_for_rounds
from learning.evaluate import VerdictRule, evaluate, improved
from learning.metrics import LOWER_IS_BETTER
from learning.models import initial_weights
from learning.plugin import all_sites, builtin_task, global_test, pooled_train
from learning.secagg import SecAggError, SecAggParams, secure_mean
from learning.secagg.primitives import session_id
from learning.serialize import blob_hash
from learning.task import TaskSpec
from learning.trainer import TrainConfig, apply_delta, default_train_config, train
from learning.validation import validate_update


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that defines one simulation run."""

    nodes: int = 8
    dataset: str = "breast-cancer"
    model: str = "logreg"
    partition: str = "iid"
    rounds: int = 30
    local_epochs: int = 2
    rule: str = "fedavg"
    attack: str | None = None
    attackers: int = 0
    gate: bool = True
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_clip: float = 1.0
    dp_noise: float | None = None
    verdict_metric: str = "loss"
    verdict_tolerance: float = 0.005
    max_update_norm: float | None = 1000.0
    fedprox_mu: float = 0.0
    seed: int = 0
    threads: int = 1
    secure_aggregation: bool = False
    dp_noise_shares: int = 0  # distributed DP: each site adds 1/m of the noise variance
    secagg_neighbours: int = 0
    secagg_dropouts: int = 0


def _train_config(task: TaskSpec, config: SimConfig) -> TrainConfig:
    base = default_train_config(task)
    return replace(
        base, epochs=config.local_epochs, fedprox_mu=config.fedprox_mu, threads=config.threads
    )


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _baseline(task: TaskSpec, init: bytes, data: Split, cfg: TrainConfig, seed: int) -> bytes:
    update, _n, _stats = train(task, init, data, cfg.with_seed(seed))
    return apply_delta(init, update)


def _round_value(metrics: dict[str, float], key: str) -> float:
    return round(metrics[key], 6)


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: _round_value(metrics, k) for k in sorted(metrics)}


def _reaches(metric: str, value: float, target: float) -> bool:
    return value <= target if LOWER_IS_BETTER[metric] else value >= target


def _candidate(
    config: SimConfig,
    rule: AggregationRule,
    r: int,
    model: bytes,
    updates: list[tuple[bytes, bytes, int]],
    entry: dict[str, Any],
) -> bytes | None:
    """The round's candidate; None (and the reason in `entry`) when secure aggregation cannot
    unmask, which on a chain is a carry-over block."""
    if not config.secure_aggregation:
        return bytes(aggregate(rule, model, updates))
    params = SecAggParams(neighbours=config.secagg_neighbours)
    session = session_id(f"simulate-{config.seed}", r, blob_hash(model))
    silent = range(max(0, len(updates) - config.secagg_dropouts), len(updates))
    blobs = [u for _h, u, _n in updates]
    entry["secagg_recovered"] = len(silent)
    try:
        candidate, _ = secure_mean(params, session, model, blobs, silent_after_masking=silent)
    except SecAggError as exc:
        if exc.reason != "secagg-threshold":
            raise
        entry["reason"] = exc.reason
        return None
    return candidate


def run_simulation(
    config: SimConfig, on_round: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the federation; return the result map (`on_round` sees each round as it ends)."""
    if config.attackers > config.nodes:
        raise ValueError("there cannot be more attackers than sites")
    if config.secure_aggregation and config.rule != "fedavg":
        raise ValueError(
            f"secure aggregation sums the updates: rule {config.rule!r} needs each one"
        )
    task = builtin_task(config.dataset, model=config.model)
    sites = all_sites(task, config.nodes, config.partition, config.seed)
    test = global_test(task, config.seed)
    init = initial_weights(task, config.seed)
    cfg = _train_config(task, config)
    rule = AggregationRule(name=config.rule)
    verdict = VerdictRule(config.verdict_metric, noise_margin=config.verdict_tolerance)
    attackers = set(range(config.attackers)) if config.attack else set()

    long_cfg = replace(cfg, epochs=config.rounds * config.local_epochs)
    central = _baseline(task, init, pooled_train(task, config.seed), long_cfg, config.seed)
    centralized = evaluate(task, central, test)
    honest = [i for i in range(config.nodes) if i not in attackers]
    local_metrics = [
        evaluate(task, _baseline(task, init, sites[i].train, long_cfg, config.seed + i), test)
        for i in honest
    ]
    local_only = {
        k: float(np.mean([m[k] for m in local_metrics]))
        for k in sorted(set.intersection(*(set(m) for m in local_metrics)))
    }

    budgets: dict[int, PrivacyBudget] = {}
    noise = None
    if config.dp_epsilon is not None:
        noise = config.dp_noise or noise_for_rounds(
            config.dp_epsilon, config.dp_delta, config.rounds
        )
        dp = DpConfig(config.dp_epsilon, config.dp_delta, config.dp_clip, noise)
        budgets = {i: PrivacyBudget(dp) for i in honest}

    model = init
    rounds: list[dict[str, Any]] = []
    for r in range(1, config.rounds + 1):
        updates: list[tuple[bytes, bytes, int]] = []
        rejected: dict[str, str] = {}
        for i, site in enumerate(sites):
            if i in budgets and not budgets[i].can_release():
                continue
            site_cfg = cfg.with_seed(_seed(config.seed, r, i))
            if i in attackers and config.attack == "labelflip":
                site_cfg = replace(site_cfg, label_flip=True)
            trained, n, _stats = train(task, model, site.train, site_cfg)
            update = bytes(trained)  # the simulator keeps every update: immutable, hashable
            if i in attackers:
                update = attack_update(str(config.attack), model, update, _seed(config.seed, r, i))
            if i in budgets:
                # a seeded generator keeps simulations reproducible; a node's noise is from the OS
                sim_rng = np.random.default_rng(_seed(config.seed, r, i, 0xD9))
                update = budgets[i].privatize(update, sim_rng, shares=config.dp_noise_shares)
            reason = validate_update(task, model, update, config.max_update_norm)
            if reason is not None:
                rejected[str(i)] = reason
                continue
            updates.append((blob_hash(update), update, n))
        entry: dict[str, Any] = {"round": r, "contributors": len(updates)}
        if rejected:
            entry["rejected_updates"] = rejected
        if budgets:
            entry["epsilon_spent"] = round(max(b.spent() for b in budgets.values()), 6)
        if len(updates) < config.dp_noise_shares:  # the sum would carry too little noise
            entry["reason"] = "dp-noise-shares"
            updates = []
        candidate = _candidate(config, rule, r, model, updates, entry) if updates else None
        if candidate is None:
            entry.update(accepted=False, attestations=0, reason=entry.get("reason", "no updates"))
            entry["test"] = _rounded(evaluate(task, model, test))
            rounds.append(entry)
            if on_round:
                on_round(entry)
            continue
        votes = 0
        for i, site in enumerate(sites):
            if i in attackers:
                votes += 1
                continue
            before = evaluate(task, model, site.val)
            after = evaluate(task, candidate, site.val)
            votes += improved(before, after, verdict)
        accepted = 3 * votes > 2 * config.nodes
        entry["accepted"] = accepted
        entry["attestations"] = votes
        entry["candidate_test"] = _rounded(evaluate(task, candidate, test))
        if accepted or not config.gate:
            model = candidate
        entry["test"] = _rounded(evaluate(task, model, test))
        rounds.append(entry)
        if on_round:
            on_round(entry)

    final = evaluate(task, model, test)
    metric = task.metric
    reach = [e["round"] for e in rounds if _reaches(metric, e["test"][metric], centralized[metric])]
    reach99 = [
        e["round"]
        for e in rounds
        if _reaches(
            metric,
            e["test"][metric],
            centralized[metric] * (1.01 if LOWER_IS_BETTER[metric] else 0.99),
        )
    ]
    result: dict[str, Any] = {
        "config": asdict(config),
        "task": task.name,
        "metric": metric,
        "rounds": rounds,
        "final": _rounded(final),
        "centralized": _rounded(centralized),
        "local_only": _rounded(local_only),
        "rounds_to_centralized": reach[0] if reach else None,
        "rounds_to_99pct_centralized": reach99[0] if reach99 else None,
        "accepted_rounds": sum(1 for e in rounds if e.get("accepted")),
        "model_hash": blob_hash(model).hex(),
    }
    if budgets:
        result["dp"] = {
            "epsilon_budget": config.dp_epsilon,
            "delta": config.dp_delta,
            "noise_multiplier": round(float(noise or 0.0), 6),
            "clip_norm": config.dp_clip,
            "epsilon_spent": round(max(b.spent() for b in budgets.values()), 6),
            "releases": max(b.releases for b in budgets.values()),
        }
    return result
