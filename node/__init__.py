"""The bcfl daemon: the only package that does I/O (network, disk, clock, threads)."""
