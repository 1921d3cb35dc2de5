"""The bcfl daemon: the only package that does I/O (network, disk, clock, threads)."""

from node import libp2p_extras

# Before any bcfl module imports py-libp2p: the library's unused optional features get
# stand-ins instead of their packages (node/libp2p_extras.py).
libp2p_extras.install()
