"""Federated learning engine: tasks, data, models, local training, aggregation, verdicts, DP.

No networking: everything here runs in-process and is tested and tuned without a network.
"""
