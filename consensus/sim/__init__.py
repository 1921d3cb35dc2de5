"""The deterministic consensus simulator: real cores, a virtual clock, a seeded faulty network.

Modules: `network` (clock, event queue, lossy links, partitions), `checker` (invariants),
`app` (the fake, deterministic learning side), `byzantine` (faulty validator behaviours),
`runner` (one seeded run and many). `consensus.simulator` is the public entry point.
"""
