"""Errors that are the user's to fix, shared by every layer of the node.

`UserError` is bad input from the user (config, CLI arguments, key and data files, a damaged
node home): `bcfl` prints its message as one sentence and exits 2, never with a traceback.
It lives here, below the CLI, so that the modules that raise it (config, keys, genesis files,
the chain layer, the daemon) never import `node.cli`.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, CLI, data file): printed as one sentence, no traceback."""
