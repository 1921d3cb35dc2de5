"""One module per `bcfl` sub-command; each parses its arguments and calls into the packages.

Every module exposes `add_arguments(parser)` and `run(args) -> int` (the exit status).
"""
