//! Nodes in one process over real loopback sockets.

use anyhow::{Context, Result, bail, ensure};
use libp2p::Multiaddr;
use std::collections::BTreeSet;
use std::time::Duration;
use tally_crypto::{PublicKey, SigningKey};
use tally_node::metrics::NetworkCounters;
use tally_node::network::{
    self, GossipTopic, Network, NetworkConfig, NetworkError, NetworkEvent, PeerAddress, PeerSet,
};
use tokio::time::timeout;

const MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// Every wait here is for a condition (an event, a counter), bounded by this. Chosen from
/// what the waits take: connecting, a redial (250 ms backoff at first) and a gossip mesh
/// forming each take well under 2 s even with both cores busy; 15 s leaves a wide margin
/// and is only ever reached by a failing test.
const WAIT: Duration = Duration::from_secs(15);
/// Redials refused that show a refused peer kept trying and stayed out.
const REDIALS_REFUSED: u64 = 2;

fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i; 32])
}

fn loopback() -> Result<Multiaddr> {
    Ok("/ip4/127.0.0.1/tcp/0".parse()?)
}

fn config(
    listen_address: Multiaddr,
    peers: Vec<PeerAddress>,
    validators: &[PublicKey],
) -> NetworkConfig {
    NetworkConfig {
        listen_address,
        peers,
        peer_set: PeerSet {
            validators: validators.iter().copied().collect(),
            observers: BTreeSet::new(),
        },
        message_bytes_max: MESSAGE_BYTES_MAX,
        request_timeout: Duration::from_secs(2),
        redial_delay_max: Duration::from_secs(1),
        peer_block_duration: Duration::from_secs(60),
        events_capacity: 1024,
        blocked_peers_file: None,
        counters: NetworkCounters::default(),
        topics: GossipTopic::ALL.to_vec(),
    }
}

struct Node {
    key: PublicKey,
    address: Multiaddr,
    net: Network,
    /// What its network counted (cut-offs, refused connections).
    counters: NetworkCounters,
}

fn address(net: &Network) -> Result<Multiaddr> {
    net.listen_addresses
        .first()
        .cloned()
        .context("node reported no listen address")
}

/// Starts `n` validators; each dials the ones started before it, so all pairs connect.
async fn start_mesh(seeds: &[u8], configure: impl Fn(u8, &mut NetworkConfig)) -> Result<Vec<Node>> {
    let keys: Vec<PublicKey> = seeds.iter().map(|s| key(*s).public_key()).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for seed in seeds {
        let peers = nodes
            .iter()
            .map(|n| PeerAddress {
                public_key: n.key,
                address: n.address.clone(),
            })
            .collect();
        let mut cfg = config(loopback()?, peers, &keys);
        configure(*seed, &mut cfg);
        let counters = cfg.counters.clone();
        let net = network::start(&key(*seed), cfg).await?;
        nodes.push(Node {
            key: key(*seed).public_key(),
            address: address(&net)?,
            net,
            counters,
        });
    }
    for node in &nodes {
        wait_connected(node, seeds.len() - 1).await?;
    }
    Ok(nodes)
}

async fn wait_connected(node: &Node, count: usize) -> Result<()> {
    let polled = async {
        loop {
            if node.net.handle.connected_peers().await?.len() >= count {
                return Ok::<(), NetworkError>(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, polled)
        .await
        .context("peers did not all connect in time")??;
    Ok(())
}

/// Takes events until `want` picks one; other events are dropped.
async fn next_matching<T>(
    node: &mut Node,
    mut want: impl FnMut(NetworkEvent) -> Option<T>,
) -> Result<T> {
    let found = async {
        while let Some(event) = node.net.events.recv().await {
            if let Some(found) = want(event) {
                return Some(found);
            }
        }
        None
    };
    timeout(WAIT, found)
        .await
        .context("timed out waiting for an event")?
        .context("event channel closed")
}

async fn direct_from(node: &mut Node, sender: PublicKey) -> Result<Vec<u8>> {
    next_matching(node, |event| match event {
        NetworkEvent::Direct { from, bytes } if from == sender => Some(bytes),
        _ => None,
    })
    .await
}

async fn gossip_from(node: &mut Node, author: PublicKey) -> Result<(GossipTopic, Vec<u8>)> {
    next_matching(node, |event| match event {
        NetworkEvent::Gossip { from, topic, bytes } if from == author => Some((topic, bytes)),
        _ => None,
    })
    .await
}

async fn disconnected(node: &mut Node, peer: PublicKey) -> Result<()> {
    next_matching(node, |event| match event {
        NetworkEvent::PeerDisconnected(key) if key == peer => Some(()),
        _ => None,
    })
    .await
}

/// Publishing fails until subscriptions have been exchanged after connecting: retry.
async fn publish(node: &Node, topic: GossipTopic, bytes: &[u8]) -> Result<()> {
    let retried = async {
        loop {
            match node.net.handle.publish(topic, bytes.to_vec()).await {
                Err(NetworkError::NoSubscribers(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
    };
    timeout(WAIT, retried)
        .await
        .context("publish kept failing")??;
    Ok(())
}

/// Collects the events `node` reports until its counters satisfy `done` (the positive
/// sign that what must not get through had its chances); fails after `WAIT`.
async fn events_until(
    node: &mut Node,
    what: &str,
    done: impl Fn(&NetworkCounters) -> bool,
) -> Result<Vec<NetworkEvent>> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&node.counters) {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not in {WAIT:?}: {what}"
        );
        if let Ok(Some(event)) = timeout(Duration::from_millis(50), node.net.events.recv()).await {
            seen.push(event);
        }
    }
    while let Ok(event) = node.net.events.try_recv() {
        seen.push(event);
    }
    Ok(seen)
}

/// The events `node` reported so far, without waiting.
fn events_so_far(node: &mut Node) -> Vec<NetworkEvent> {
    let mut seen = Vec::new();
    while let Ok(event) = node.net.events.try_recv() {
        seen.push(event);
    }
    seen
}

fn pick(nodes: &mut [Node], i: usize) -> Result<&mut Node> {
    nodes.get_mut(i).context("no such node")
}

/// An audit node takes evidence and governance gossip, not transaction batches: it checks
/// transactions in blocks, and each batch relayed through it cost it and every validator a
/// copy (decrypted, its gossip signature checked) for nothing.
#[tokio::test]
async fn a_node_that_does_not_take_transaction_gossip_is_not_sent_it() -> Result<()> {
    let mut nodes = start_mesh(&[1, 2, 3, 4], |seed, cfg| {
        if seed == 4 {
            cfg.topics = GossipTopic::OBSERVED.to_vec();
        }
    })
    .await?;
    let author = pick(&mut nodes, 0)?.key;
    publish(
        pick(&mut nodes, 0)?,
        GossipTopic::Transactions,
        b"transfer 9",
    )
    .await?;
    publish(pick(&mut nodes, 0)?, GossipTopic::Evidence, b"evidence 9").await?;
    for i in [1, 2] {
        let (topic, bytes) = gossip_from(pick(&mut nodes, i)?, author).await?;
        ensure!(topic == GossipTopic::Transactions && bytes == b"transfer 9");
    }
    // Its chance: the evidence was published after the batch, by the same node, so a batch
    // sent to the audit node would have reached it first.
    let mut before_evidence = Vec::new();
    next_matching(pick(&mut nodes, 3)?, |event| match event {
        NetworkEvent::Gossip {
            topic: GossipTopic::Evidence,
            bytes,
            ..
        } if bytes == b"evidence 9" => Some(()),
        other => {
            before_evidence.push(other);
            None
        }
    })
    .await?;
    before_evidence.extend(events_so_far(pick(&mut nodes, 3)?));
    ensure!(
        !before_evidence.iter().any(|e| matches!(
            e,
            NetworkEvent::Gossip {
                topic: GossipTopic::Transactions,
                ..
            }
        )),
        "the audit node was sent transaction gossip: {before_evidence:?}"
    );
    Ok(())
}

#[tokio::test]
async fn four_validators_exchange_direct_gossip_and_sync_messages() -> Result<()> {
    let mut nodes = start_mesh(&[1, 2, 3, 4], |_, _| {}).await?;
    let keys: Vec<PublicKey> = nodes.iter().map(|n| n.key).collect();
    let [k0, k1, k2, k3] = keys[..] else {
        bail!("four nodes expected")
    };

    // Direct, to one peer.
    pick(&mut nodes, 0)?
        .net
        .handle
        .send_direct(k1, b"proposal".to_vec())
        .await?;
    ensure!(direct_from(pick(&mut nodes, 1)?, k0).await? == b"proposal");

    // Direct, to every validator.
    let sent = pick(&mut nodes, 2)?
        .net
        .handle
        .broadcast_direct(b"prevote".to_vec())
        .await?;
    ensure!(sent == 3, "broadcast reached {sent} validators, expected 3");
    for i in [0, 1, 3] {
        ensure!(direct_from(pick(&mut nodes, i)?, k2).await? == b"prevote");
    }

    // Gossip: every other node hears it once, named by its author.
    publish(
        pick(&mut nodes, 3)?,
        GossipTopic::Transactions,
        b"transfer 1",
    )
    .await?;
    for i in [0, 1, 2] {
        let (topic, bytes) = gossip_from(pick(&mut nodes, i)?, k3).await?;
        ensure!(topic == GossipTopic::Transactions && bytes == b"transfer 1");
    }
    let again = pick(&mut nodes, 3)?
        .net
        .handle
        .publish(GossipTopic::Transactions, b"transfer 1".to_vec())
        .await;
    ensure!(again == Err(NetworkError::Duplicate), "got {again:?}");

    // Sync: node 0 answers node 1's request.
    let (requester, rest) = nodes.split_at_mut(1);
    let asking = async {
        let answer = pick(rest, 0)?
            .net
            .handle
            .request(k0, b"block 7".to_vec())
            .await?;
        Ok::<_, anyhow::Error>(answer)
    };
    let answering = async {
        let node0 = pick(requester, 0)?;
        let (bytes, responder) = next_matching(node0, |event| match event {
            NetworkEvent::SyncRequest {
                from,
                bytes,
                responder,
            } if from == k1 => Some((bytes, responder)),
            _ => None,
        })
        .await?;
        let mut answer = b"here is ".to_vec();
        answer.extend_from_slice(&bytes);
        responder.respond(answer).await?;
        Ok::<_, anyhow::Error>(())
    };
    let (answer, answered) = tokio::join!(asking, answering);
    answered?;
    ensure!(answer? == b"here is block 7");

    // A request nobody answers fails instead of hanging. Both sides run the same
    // request timeout (libp2p's, one per stream, 2 s here): when the requester's fires
    // first it is a timeout; when the silent peer's fires first, that peer closes the
    // stream and the requester reads its end. Which comes first is the schedulers' choice
    // (the repeat saw both), and either frees the requester to ask another peer.
    let unanswered = timeout(
        WAIT,
        pick(&mut nodes, 1)?
            .net
            .handle
            .request(k2, b"block 8".to_vec()),
    )
    .await
    .context("a request nobody answers hung")?;
    ensure!(
        matches!(
            &unanswered,
            Err(NetworkError::Timeout { peer } | NetworkError::RequestFailed { peer, .. })
                if *peer == k2
        ),
        "got {unanswered:?}"
    );

    // Oversized messages are refused locally, before they leave.
    let big = vec![0u8; MESSAGE_BYTES_MAX + 1];
    let refused = pick(&mut nodes, 0)?.net.handle.send_direct(k3, big).await;
    ensure!(matches!(refused, Err(NetworkError::MessageTooLarge { .. })));
    Ok(())
}

#[tokio::test]
async fn a_key_outside_the_peer_set_cannot_connect_until_it_is_allowed() -> Result<()> {
    let (a, b, outsider) = (
        key(11).public_key(),
        key(12).public_key(),
        key(13).public_key(),
    );
    let mut nodes = start_mesh(&[11, 12], |_, cfg| {
        cfg.peer_set.validators = [a, b].into_iter().collect();
    })
    .await?;
    // The outsider would accept A and keeps dialling it.
    let dial_a = PeerAddress {
        public_key: a,
        address: pick(&mut nodes, 0)?.address.clone(),
    };
    let outsider_config = config(loopback()?, vec![dial_a], &[a, outsider]);
    let counters = outsider_config.counters.clone();
    let net = network::start(&key(13), outsider_config).await?;
    let mut outsider_node = Node {
        key: outsider,
        address: address(&net)?,
        net,
        counters,
    };

    // While the outsider redials, A sends to all its validators and gossips.
    let node_a = pick(&mut nodes, 0)?;
    let sent = node_a.net.handle.broadcast_direct(b"vote".to_vec()).await?;
    ensure!(sent == 1, "A sent to {sent} validators, expected only B");
    publish(node_a, GossipTopic::Evidence, b"evidence").await?;
    // The outsider's chances: A refuses its redials (counted) after the sends above.
    let refused_before = node_a.counters.connections_refused.get("not_allowed");
    let seen_by_a = events_until(node_a, "A refused the outsider's redials", |c| {
        c.connections_refused.get("not_allowed") >= refused_before + REDIALS_REFUSED
    })
    .await?;
    ensure!(
        !seen_by_a
            .iter()
            .any(|e| matches!(e, NetworkEvent::PeerConnected(k) if *k == outsider)),
        "A accepted the outsider"
    );
    ensure!(node_a.net.handle.connected_peers().await? == vec![b]);
    let seen_by_outsider = events_so_far(&mut outsider_node);
    ensure!(
        !seen_by_outsider
            .iter()
            .any(|e| matches!(e, NetworkEvent::Direct { .. } | NetworkEvent::Gossip { .. })),
        "the outsider received a message: {seen_by_outsider:?}"
    );
    ensure!(direct_from(pick(&mut nodes, 1)?, a).await? == b"vote");

    // Admitting the outsider at runtime lets it in; removing it again cuts it off.
    let node_a = pick(&mut nodes, 0)?;
    let with_outsider = PeerSet {
        validators: [a, b].into_iter().collect(),
        observers: [outsider].into_iter().collect(),
    };
    node_a.net.handle.set_peer_set(with_outsider).await?;
    wait_connected(&outsider_node, 1).await?;
    // The dialler may count the connection a moment before A has taken it in.
    let admitted = async {
        loop {
            if node_a
                .net
                .handle
                .connected_peers()
                .await?
                .contains(&outsider)
            {
                return Ok::<(), NetworkError>(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(WAIT, admitted)
        .await
        .context("A did not take the outsider in")??;
    node_a
        .net
        .handle
        .send_direct(outsider, b"welcome".to_vec())
        .await?;
    ensure!(direct_from(&mut outsider_node, a).await? == b"welcome");
    let observers_are_not_validators = node_a.net.handle.broadcast_direct(b"x".to_vec()).await?;
    ensure!(observers_are_not_validators == 1);

    node_a
        .net
        .handle
        .set_peer_set(PeerSet {
            validators: [a, b].into_iter().collect(),
            observers: BTreeSet::new(),
        })
        .await?;
    disconnected(node_a, outsider).await?;
    Ok(())
}

#[tokio::test]
async fn an_oversized_message_cuts_off_its_sender_and_the_others_go_on() -> Result<()> {
    // Node 24 believes in a larger limit than everyone else.
    let mut nodes = start_mesh(&[21, 22, 23, 24], |seed, cfg| {
        if seed == 24 {
            cfg.message_bytes_max = 4 * MESSAGE_BYTES_MAX;
        }
    })
    .await?;
    let keys: Vec<PublicKey> = nodes.iter().map(|n| n.key).collect();
    let [k0, k1, k2, bad] = keys[..] else {
        bail!("four nodes expected")
    };

    // A direct message one byte over node 0's limit.
    let oversized = vec![7u8; MESSAGE_BYTES_MAX + 1];
    pick(&mut nodes, 3)?
        .net
        .handle
        .send_direct(k0, oversized)
        .await?;
    disconnected(pick(&mut nodes, 0)?, bad).await?;

    // A gossip message over the limit (but inside gossipsub's frame) gets it cut off by
    // whoever receives it.
    let oversized_gossip = vec![8u8; MESSAGE_BYTES_MAX + 100];
    publish(
        pick(&mut nodes, 3)?,
        GossipTopic::Transactions,
        &oversized_gossip,
    )
    .await?;
    disconnected(pick(&mut nodes, 1)?, bad).await?;

    // The others keep talking.
    pick(&mut nodes, 1)?
        .net
        .handle
        .send_direct(k0, b"still here".to_vec())
        .await?;
    ensure!(direct_from(pick(&mut nodes, 0)?, k1).await? == b"still here");
    publish(
        pick(&mut nodes, 2)?,
        GossipTopic::Transactions,
        b"transfer 2",
    )
    .await?;
    ensure!(gossip_from(pick(&mut nodes, 0)?, k2).await?.1 == b"transfer 2");
    ensure!(gossip_from(pick(&mut nodes, 1)?, k2).await?.1 == b"transfer 2");

    // The cut-off node stays out: its redials are refused (counted) and nothing it sends
    // arrives.
    let _ = pick(&mut nodes, 3)?
        .net
        .handle
        .broadcast_direct(b"let me in".to_vec())
        .await;
    let node_0 = pick(&mut nodes, 0)?;
    let refused_before = node_0.counters.connections_refused.get("blocked");
    ensure!(
        node_0.counters.peers_cut_off.get("malformed_direct") == 1,
        "node 0 did not count the oversized message's cut-off"
    );
    let seen = events_until(node_0, "node 0 refused the cut-off node's redials", |c| {
        c.connections_refused.get("blocked") >= refused_before + REDIALS_REFUSED
    })
    .await?;
    ensure!(
        !seen.iter().any(|e| matches!(
            e,
            NetworkEvent::Direct { from, .. } | NetworkEvent::Gossip { from, .. } if *from == bad
        ) || matches!(e, NetworkEvent::PeerConnected(k) if *k == bad)),
        "the cut-off node got through: {seen:?}"
    );
    ensure!(
        !pick(&mut nodes, 0)?
            .net
            .handle
            .connected_peers()
            .await?
            .contains(&bad)
    );

    // The upper layer can cut off a peer too.
    pick(&mut nodes, 2)?
        .net
        .handle
        .report(k1, "invalid vote signature")
        .await?;
    disconnected(pick(&mut nodes, 2)?, k1).await?;
    Ok(())
}

#[tokio::test]
async fn a_restarted_node_is_redialled_by_its_peers() -> Result<()> {
    let mut nodes = start_mesh(&[31, 32, 33], |_, _| {}).await?;
    let keys: Vec<PublicKey> = nodes.iter().map(|n| n.key).collect();
    let [k0, k1, _] = keys[..] else {
        bail!("three nodes expected")
    };

    // Node 0 stops; the others notice.
    let stopped = nodes.remove(0);
    let old_address = stopped.address.clone();
    stopped.net.handle.shutdown().await?;
    timeout(WAIT, stopped.net.task).await??;
    for node in nodes.iter_mut() {
        disconnected(node, k0).await?;
    }

    // It comes back on the same port with nobody to dial: the others must redial it.
    let restarted_config = config(old_address.clone(), Vec::new(), &keys);
    let counters = restarted_config.counters.clone();
    let net = network::start(&key(31), restarted_config).await?;
    let mut restarted = Node {
        key: k0,
        address: address(&net)?,
        net,
        counters,
    };
    ensure!(restarted.address == old_address);
    wait_connected(&restarted, 2).await?;
    nodes
        .first()
        .context("node 1")?
        .net
        .handle
        .send_direct(k0, b"welcome back".to_vec())
        .await?;
    ensure!(direct_from(&mut restarted, k1).await? == b"welcome back");
    Ok(())
}

/// The TCP port of a `/ip4/../tcp/PORT` listen address.
fn tcp_socket(address: &Multiaddr) -> Result<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for part in address.iter() {
        match part {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(std::net::SocketAddr::new(ip, port)),
        _ => bail!("not an /ip4/../tcp/.. address: {address}"),
    }
}

/// One stalled dialler: connects from `from`, says nothing, and when the node drops the
/// connection (refused, or the handshake timed out) dials again, at most `redials` times.
async fn stalled_dialler(
    target: std::net::SocketAddr,
    from: std::net::IpAddr,
    redials: usize,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    for _ in 0..redials {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(from, 0))?;
        if let Ok(mut stream) = socket.connect(target).await {
            let mut buf = [0u8; 256];
            // Whatever the node sends, never answer; a read of 0 or an error is the close.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        // Paced, so that the refused part of the flood does not spin both cores.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_host_stalling_handshakes_from_one_address_does_not_keep_peers_out() -> Result<()> {
    // More stalled connections than the node-wide cap of 64 pending handshakes: without a
    // cap per address the flood would hold every slot and the honest peer would be refused.
    const STALLED: usize = 100;
    const PER_ADDRESS_MAX: u64 = 8;
    let (a, b) = (key(41).public_key(), key(42).public_key());
    let mut nodes = start_mesh(&[41], |_, cfg| {
        cfg.peer_set.validators = [a, b].into_iter().collect();
    })
    .await?;
    let node_a = pick(&mut nodes, 0)?;
    let target = tcp_socket(&node_a.address)?;
    // The flood comes from another loopback address than the honest peer's 127.0.0.1.
    let attacker: std::net::IpAddr = "127.0.0.2".parse()?;
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..STALLED {
        flood.spawn(stalled_dialler(target, attacker, 1_000));
    }
    // The positive sign the flood arrived: A refused all but its per-address share.
    let wanted = STALLED as u64 - PER_ADDRESS_MAX;
    events_until(
        node_a,
        "A refused the flood beyond its per-address cap",
        |c| c.connections_refused.get("address_limit") >= wanted,
    )
    .await?;

    // With the flood still holding its share, a validator from another address connects.
    let dial_a = PeerAddress {
        public_key: a,
        address: node_a.address.clone(),
    };
    let b_config = config(loopback()?, vec![dial_a], &[a, b]);
    let counters = b_config.counters.clone();
    let net = network::start(&key(42), b_config).await?;
    let node_b = Node {
        key: b,
        address: address(&net)?,
        net,
        counters,
    };
    wait_connected(&node_b, 1).await?;
    ensure!(
        flood.len() == STALLED && flood.try_join_next().is_none(),
        "the flood stopped before B connected, so it proved nothing"
    );
    let node_a = pick(&mut nodes, 0)?;
    ensure!(
        node_a.counters.connections_refused.get("limit") == 0,
        "the node-wide cap was reached: one address took more than its share"
    );
    flood.shutdown().await;
    Ok(())
}
