"""The sans-IO node shell between the consensus core and a node's I/O (see shell.py)."""

from consensus.shell.phases import PHASES, HeightTimes
from consensus.shell.requests import (
    GOVERNANCE,
    TOPICS,
    Aggregate,
    CountRejection,
    Evaluate,
    FetchBlocks,
    FetchUpdate,
    NoteEvidence,
    PersistSigner,
    Publish,
    Request,
    StartTimer,
    StoreCommit,
    SyncedBlock,
    Train,
)
from consensus.shell.shell import NodeShell, ShellPolicy, signed_slot, topic_of

__all__ = [
    "GOVERNANCE",
    "PHASES",
    "TOPICS",
    "Aggregate",
    "CountRejection",
    "Evaluate",
    "FetchBlocks",
    "FetchUpdate",
    "HeightTimes",
    "NodeShell",
    "NoteEvidence",
    "PersistSigner",
    "Publish",
    "Request",
    "ShellPolicy",
    "StartTimer",
    "StoreCommit",
    "SyncedBlock",
    "Train",
    "signed_slot",
    "topic_of",
]
