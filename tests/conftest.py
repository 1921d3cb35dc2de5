"""Import `node` before any test module imports py-libp2p, as a daemon does: its unused optional
features then get the stand-ins of node/libp2p_extras.py here too, so the suite tests the
library as it is loaded in production."""

import node  # noqa: F401
