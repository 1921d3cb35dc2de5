"""Sans-IO proof-of-learning BFT consensus core (Tendermint Algorithm 1, Buchman et al. 2018).

Pure, synchronous and deterministic: no clock, no sockets, no trio, no libp2p, no torch.
"""
