"""Federated learning engine: tasks, data, models, local training, aggregation, verdicts, DP.

No networking: everything here runs in-process and is tested and tuned without a network.
The node calls the names re-exported below (see each module for the why; `node/app.py` is the
caller). An "update" blob is always a DELTA
(local weights - global weights) as float32 safetensors; a model blob holds full weights.
"""

from learning.aggregate import RULES, AggregationError, AggregationRule, aggregate
from learning.attacks import ATTACKS, attack_update, parse_attack
from learning.csvdata import load_csv
from learning.data import DataError, SiteData, Split, parse_partition, split_train_val
from learning.dp import (
    DpConfig,
    PolicyAccountant,
    PrivacyBudget,
    epsilon_after,
    noise_for_rounds,
    privatize_update,
)
from learning.evaluate import VerdictRule, best_of, evaluate, improved, verdict_metric
from learning.models import build_model, initial_weights
from learning.plugin import (
    BUILTIN_TASKS,
    Task,
    all_sites,
    builtin_task,
    check_installed,
    code_hash,
    global_test,
    pooled_train,
    site_data,
)
from learning.serialize import BlobError, blob_hash, bytes_to_weights, weights_to_bytes
from learning.task import TaskError, TaskSpec
from learning.trainer import TrainConfig, TrainStats, apply_delta, default_train_config, train
from learning.validation import REASONS, update_norm, validate_update

__all__ = [
    "ATTACKS",
    "BUILTIN_TASKS",
    "REASONS",
    "RULES",
    "AggregationError",
    "AggregationRule",
    "BlobError",
    "DataError",
    "DpConfig",
    "PolicyAccountant",
    "PrivacyBudget",
    "SiteData",
    "Split",
    "Task",
    "TaskError",
    "TaskSpec",
    "TrainConfig",
    "TrainStats",
    "VerdictRule",
    "aggregate",
    "all_sites",
    "apply_delta",
    "attack_update",
    "blob_hash",
    "build_model",
    "builtin_task",
    "bytes_to_weights",
    "check_installed",
    "code_hash",
    "default_train_config",
    "epsilon_after",
    "privatize_update",
    "evaluate",
    "global_test",
    "best_of",
    "improved",
    "initial_weights",
    "load_csv",
    "noise_for_rounds",
    "parse_attack",
    "parse_partition",
    "pooled_train",
    "site_data",
    "split_train_val",
    "train",
    "update_norm",
    "validate_update",
    "verdict_metric",
    "weights_to_bytes",
]
