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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from consensus import codec
from consensus.core import ChainTip, ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import InvalidGenesis, validate_genesis
from consensus.guard import SignerState
from consensus.types import ROLE_TRAINER, ROLE_VALIDATOR, Genesis, ValidatorIndex, ValidatorInfo
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
    joining: bool = False
    """Not a member yet: governance will add this key (then `me` is found by the core)."""


def find_me(
    genesis: Genesis,
    public_key: bytes,
    config: NodeConfig,
    members: tuple[ValidatorInfo, ...] = (),
) -> Identity:
    """This node's member index and effective roles (the member set's roles the config also
    enables); `members` is the set of the node's committed tip (governance changes it).

    A validator whose config drops `validator` is refused: the core would go on voting with
    the set's power (the chain counts on it for quorums), so the config would lie
    (docs/THREAT-MODEL.md "A config that lies"). A key in no set, with the validator or
    trainer role in the config, is a site joining the running chain: it follows the chain and
    takes its seat when governance adds its key (docs/ARCHITECTURE.md "Governance").
    """
    for index, member in enumerate(members or genesis.validators):
        if member.public_key == public_key and member.roles:
            if ROLE_VALIDATOR in member.roles and ROLE_VALIDATOR not in config.node.roles:
                raise UserError(
                    f"node.roles omits validator, but the member set gives {member.name!r} "
                    "voting power; add validator to node.roles (or propose a power change)"
                )
            roles = tuple(r for r in member.roles if r in config.node.roles)
            return Identity(ValidatorIndex(index), roles, member.name)
    if "observer" in config.node.roles:
        return Identity(None, ("observer",), config.node.name)
    if set(config.node.roles) & {ROLE_VALIDATOR, ROLE_TRAINER}:
        return Identity(None, tuple(config.node.roles), config.node.name, joining=True)
    raise UserError(
        'this node\'s validator key is not in the genesis; set node.roles = ["observer"] '
        "to follow the chain without a seat"
    )


def allowed_peers(core: ConsensusCore, observers: Sequence[str]) -> set[str]:
    """Peer gating follows the member set: the current members, the sites a pending or
    scheduled change adds or rotates to (so a joiner can sync before its activation height),
    and the configured observers. A removed member is not in it (docs/ARCHITECTURE.md
    "Governance")."""
    ledger = core.ledger
    allowed = {m.peer_id for m in core.validator_set.members if m.roles}
    for change in [p.change for p in ledger.pending] + [s.change for s in ledger.scheduled]:
        if change.member is not None:
            allowed.add(change.member.peer_id)
    return allowed | set(observers)


def load_tip(store: ChainStore) -> ChainTip | None:
    """The last committed block, its certificate and ledger, or None on a fresh home."""
    return Chain(store).tip()


async def run_node(home_dir: Path) -> None:
    """Run the node of `home_dir` until cancelled or signalled."""
    from node.app import DataConfigError, LearningApp
    from node.driver import Driver
    from node.genesis_files import load_genesis, load_genesis_model
    from node.gossip_validation import GossipValidator
    from node.governance_api import governance_routes
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
    load_genesis_model(home, genesis)
    identity = load_node_identity(home)
    validator_key = load_validator_key(home)
    store = ChainStore.open(home)
    tip = load_tip(store)
    # a rotation in flight: the member's next BLS key (`bcfl member propose rotate`), signed
    # with from the activation height on (docs/ARCHITECTURE.md "Governance")
    next_path = home.validator_key_path.with_name(home.validator_key_path.name + ".next")
    next_signers = (BlsSigner(read_seed(next_path)),) if next_path.exists() else ()
    members = tip.ledger.members if tip else ()
    who = find_me(genesis, validator_key.public_key, config, members)
    if who.me is None and next_signers:  # restarted after the rotation took effect
        rotated = find_me(genesis, next_signers[0].public_key, config, members)
        who = rotated if rotated.me is not None else who
    active = who.me is not None or who.joining
    signs = active and "validator" in who.roles
    is_trainer = active and "trainer" in who.roles

    signer = BlsSigner(read_seed(home.validator_key_path)) if active else None
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
        tip=tip,
        next_signers=next_signers,
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
    allowed = allowed_peers(core, config.network.observers)
    # sized from the member set at start (indices only grow); an honest block stays far below
    # its cap (about 460 B a member against 1 KiB), so a set grown since still fits
    caps = size_caps_for(len(core.validator_set.members))
    net = NodeNetwork(
        identity.key_pair(),
        NetworkSettings(
            chain_id=genesis.chain_id,
            listen=config.network.listen,
            bootstrap=list(config.network.bootstrap),
            allowed_peers=allowed,
            size_caps=caps,
            transport=config.network.transport,
            # a member's peers are members that dial it too; an observer or a joiner is
            # dialed by nobody (node/network/settings.py `dial_defer_s`)
            dial_defer_s=10.0 if who.me is not None and not who.joining else 0.0,
        ),
        store,
    )
    edge = GossipValidator(
        genesis,
        verifier,
        lambda: int(core.height),
        current_admission=lambda: core.admission,
        local_peer_id=str(net.peer_id),
        size_caps=caps,
    )
    edge.install(net)
    app = None
    if active and (signs or is_trainer):
        try:
            app = LearningApp(genesis, config, home.root, who.me, accountant)
        except DataConfigError as exc:
            raise UserError(str(exc)) from None

    secagg = None
    if genesis.privacy.secure_aggregation:
        from node.keys import load_agreement_key
        from node.services.secagg_round import RevealLog, SecAggKeys

        trains = is_trainer  # a joiner too: it masks once governance adds it
        secagg = SecAggKeys(
            agreement_key=load_agreement_key(home) if trains else None,
            signer=signer,
            verifier=verifier,
            reveal_log=RevealLog(home.secagg_reveals_path, genesis.chain_id) if trains else None,
            wait_s=max(2.0, genesis.timeouts.attestation / 3),
            silent=config.byzantine.behaviour == "secagg-silent",
        )
    nursery_box: list[trio.Nursery] = []  # the root nursery, for the gate's disconnects
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
        secagg=secagg,
        decoded=edge.decoded,
        on_members=lambda c: nursery_box[0].start_soon(
            net.follow_members, allowed_peers(c, config.network.observers)
        ),
    )
    api = HttpApi(host=config.api.host, port=config.api.port)
    exporter = MetricsExporter(metrics, host=config.metrics.host, port=config.metrics.port)
    async with trio.open_nursery() as nursery:
        nursery_box.append(nursery)
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        await nursery.start(net.run)
        if config.metrics.port and config.metrics.enabled:
            await nursery.start(exporter.run)
        await nursery.start(LoopLagMonitor(metrics).run)
        get_routes, post_routes = governance_routes(core, driver, str(net.peer_id))
        api.routes.update(get_routes)
        api.post_routes.update(post_routes)
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
