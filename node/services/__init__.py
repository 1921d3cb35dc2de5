"""The daemon's services around the node shell, each `run(self, *, task_status)` (see driver.py)."""
