"""`bcfl run`: assemble one node from its home and run every service in one trio nursery.

Start-up order matters for safety: the signer state and the committed chain are read from the
store before the core is built, so a restarted validator resumes at its last signed position
and never signs a conflicting message (the core's guard refuses; the driver persists each new
position before the signature leaves the process).

Services (each `async def run(self, *, task_status=...)`, started with `nursery.start`): the
libp2p network, the local HTTP API (status, chain, metrics; 127.0.0.1 by default), the
Prometheus exporter (its own port, a thread so a scrape never waits on the event loop), the
event-loop lag monitor, and the consensus driver. SIGTERM and SIGINT stop them all cleanly.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import trio

from consensus import codec
from consensus.core import ChainTip, ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import InvalidGenesis, validate_genesis
from consensus.guard import SignerState
from consensus.types import ROLE_VALIDATOR, Genesis, ValidatorIndex
from node.chain import Chain
from node.config import NodeConfig, load_config
from node.errors import UserError
from node.home import NodeHome
from node.keys import load_node_identity, load_validator_key, read_seed
from node.store import ChainStore
from node.verify_cache import CachingVerifier

log = logging.getLogger("bcfl.daemon")
VERSION = "0.1.0"
GARBAGE_RATE = 50.0  # messages per second of a `garbage` test node


@dataclass
class Identity:
    """Who this node is in the genesis."""

    me: ValidatorIndex | None
    roles: tuple[str, ...]
    name: str


def find_me(genesis: Genesis, public_key: bytes, config: NodeConfig) -> Identity:
    """This node's member index and effective roles (genesis roles the config also enables).

    A genesis validator whose config drops `validator` is refused: the core would go on
    voting with the genesis power (the chain counts on it for quorums), so the config would lie
    (docs/THREAT-MODEL.md "A config that lies").
    """
    for index, member in enumerate(genesis.validators):
        if member.public_key == public_key:
            if ROLE_VALIDATOR in member.roles and ROLE_VALIDATOR not in config.node.roles:
                raise UserError(
                    f"node.roles omits validator, but the genesis gives member {member.name!r} "
                    "voting power; add validator to node.roles (a seat's power changes only "
                    "with a new genesis)"
                )
            roles = tuple(r for r in member.roles if r in config.node.roles)
            return Identity(ValidatorIndex(index), roles, member.name)
    if "observer" in config.node.roles:
        return Identity(None, ("observer",), config.node.name)
    raise UserError(
        'this node\'s validator key is not in the genesis; set node.roles = ["observer"] '
        "to follow the chain without a seat"
    )


def refuse_unbuilt_privacy(genesis: Genesis) -> None:
    """Refuse a genesis that switches on secure aggregation: the protocol exists (learning/secagg)
    but the node does not run it yet, and sending updates in the clear under a genesis that
    promises masking would mislead every member (docs/ARCHITECTURE.md "Secure aggregation")."""
    if genesis.privacy.secure_aggregation:
        raise UserError(
            "the genesis switches on privacy.secure_aggregation, which this node does not run yet "
            "(updates would travel in the clear); make a genesis without --secure-aggregation"
        )


def load_tip(store: ChainStore) -> ChainTip | None:
    """The last committed block, its certificate and ledger, or None on a fresh home."""
    return Chain(store).tip()


async def run_node(home_dir: Path) -> None:
    """Run the node of `home_dir` until cancelled or signalled."""
    from node.app import DataConfigError, LearningApp
    from node.driver import Driver
    from node.genesis_files import load_genesis, load_genesis_model
    from node.gossip_validation import GossipValidator
    from node.httpapi import HttpApi
    from node.network import NetworkSettings, NodeNetwork, size_caps_for
    from node.network.log_levels import demote_expected_failures
    from node.routes import api_routes
    from telemetry.exporter import MetricsExporter
    from telemetry.logs import configure_logging
    from telemetry.looplag import LoopLagMonitor
    from telemetry.metrics import NodeMetrics

    home = NodeHome(home_dir.expanduser().resolve())
    config = load_config(home.config_path)
    log_ctx = configure_logging(
        config.node.name, fmt=config.log.format, level=config.log.level.upper()
    )
    for noisy in ("libp2p", "multiaddr", "async_service"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    demote_expected_failures()  # failed dials to peers not up yet are not errors
    genesis = load_genesis(home)
    verifier = CachingVerifier(BlsVerifier())  # gossip edge and core share verified results
    try:
        validator_set = validate_genesis(genesis, verifier)
    except InvalidGenesis as exc:
        raise UserError(f"the genesis is invalid: {exc}") from None
    refuse_unbuilt_privacy(genesis)
    load_genesis_model(home, genesis)
    identity = load_node_identity(home)
    validator_key = load_validator_key(home)
    who = find_me(genesis, validator_key.public_key, config)
    signs = who.me is not None and "validator" in who.roles
    is_trainer = who.me is not None and "trainer" in who.roles

    signer = BlsSigner(read_seed(home.validator_key_path)) if who.me is not None else None
    store = ChainStore.open(home)
    signer_state_bytes = store.load_signer_state()
    signer_state = codec.decode_as(signer_state_bytes, SignerState) if signer_state_bytes else None
    accountant = None
    if genesis.privacy.dp_enabled:  # one cached accountant for the core and the app
        from learning import PolicyAccountant

        accountant = PolicyAccountant(genesis.privacy.noise_multiplier, genesis.privacy.delta)
    core = ConsensusCore(
        genesis,
        verifier=verifier,
        accountant=accountant,
        me=who.me if who.me is not None and (signs or is_trainer) else None,
        signer=signer,
        signer_state=signer_state,
        tip=load_tip(store),
    )
    metrics = NodeMetrics(
        node_id=config.node.name,
        chain_id=genesis.chain_id,
        version=VERSION,
        enabled=config.metrics.enabled,
    )
    quorum_peers = validator_set.quorum_peers()
    metrics.set_validator_set(
        validators=sum(1 for v in genesis.validators if v.power > 0), quorum_peers=quorum_peers
    )
    allowed = {v.peer_id for v in genesis.validators} | set(config.network.observers)
    caps = size_caps_for(len(genesis.validators))
    net = NodeNetwork(
        identity.key_pair(),
        NetworkSettings(
            chain_id=genesis.chain_id,
            listen=config.network.listen,
            bootstrap=list(config.network.bootstrap),
            allowed_peers=allowed,
            size_caps=caps,
        ),
        store,
    )
    GossipValidator(
        genesis,
        verifier,
        lambda: int(core.height),
        local_peer_id=str(net.peer_id),
        size_caps=caps,
    ).install(net)
    app = None
    if who.me is not None and (signs or is_trainer):
        try:
            app = LearningApp(genesis, config, home.root, who.me, accountant)
        except DataConfigError as exc:
            raise UserError(str(exc)) from None

    driver = Driver(
        core=core,
        store=store,
        net=net,
        app=app,
        metrics=metrics,
        is_trainer=is_trainer,
        keep_last_models=config.storage.keep_last_models,
        equivocator=signer if config.byzantine.behaviour == "equivocate" and signs else None,
        insider=(config.byzantine.behaviour, signer) if signs and signer is not None else None,
        on_height=lambda h, r: log_ctx.set(height=h, round=r),
    )
    api = HttpApi(host=config.api.host, port=config.api.port)
    exporter = MetricsExporter(metrics, host=config.metrics.host, port=config.metrics.port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        await nursery.start(net.run)
        if config.metrics.port and config.metrics.enabled:
            await nursery.start(exporter.run)
        await nursery.start(LoopLagMonitor(metrics).run)
        api.routes.update(
            api_routes(
                home=home,
                config=config,
                genesis=genesis,
                core=core,
                driver=driver,
                store=store,
                metrics=metrics,
                peer_id=str(net.peer_id),
            )
        )
        await nursery.start(api.run)
        if config.byzantine.behaviour == "garbage":
            from node.byzantine import GarbageSpammer

            spammer = GarbageSpammer(
                net,
                genesis.chain_id,
                who.me or 0,
                GARBAGE_RATE,
                signer=signer,
            )
            await nursery.start(spammer.run)
        else:
            await nursery.start(driver.run)
        log.info(
            "node %s up: peer %s, index %s, roles %s, api 127.0.0.1:%d",
            config.node.name,
            net.peer_id,
            who.me,
            ",".join(who.roles),
            api.bound_port,
        )


async def _stop_on_signal(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, stopping", signal.Signals(signum).name)
            cancel_scope.cancel()
            return
