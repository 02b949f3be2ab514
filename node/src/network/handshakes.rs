//! A cap on the handshakes in progress from any one IP address.
//!
//! Before the Noise handshake proves a dialler's key, all the node knows of it is the address
//! it dials from. The whole-node cap (`connection_limits`, 64 pending) stops a flood from
//! using up memory, but alone it lets one host hold all 64 slots with stalled TCP connections
//! (each is dropped only when the 10 s handshake timeout fires, and the attacker reopens it),
//! so that no validator can reconnect. Counting per address bounds what one host takes: it
//! needs many addresses to fill the node-wide cap. Validators dial each other once per peer,
//! so an honest host has at most one handshake in flight per node running on it.
//!
//! An IPv6 host is counted by its /64 network, not its full address: a provider hands a
//! customer a whole /64 (often more), so one attacker can dial from 2^64 addresses and
//! would otherwise fill the node-wide cap alone. An IPv4 address mapped into IPv6
//! (`::ffff:a.b.c.d`, as a dual-stack listener reports it) counts as that IPv4 address.

use libp2p::PeerId;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// The refusal, counted under the reason `address_limit`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{pending} handshakes already in progress from {address} (at most {max} per address, an IPv6 /64 counting as one)"
)]
pub(super) struct TooManyHandshakes {
    pub address: IpAddr,
    pub pending: u32,
    pub max: u32,
}

/// Counts inbound connections between accept and the end of their handshake, by the IP
/// address they come from, and refuses one more from an address already at `max`.
pub(super) struct HandshakesPerAddress {
    max: u32,
    /// Each pending connection's address, to find its count again when it ends.
    pending: HashMap<ConnectionId, IpAddr>,
    /// Pending connections per address; an address with none has no entry.
    per_address: BTreeMap<IpAddr, u32>,
}

impl HandshakesPerAddress {
    pub(super) fn new(max: u32) -> HandshakesPerAddress {
        HandshakesPerAddress {
            max,
            pending: HashMap::new(),
            per_address: BTreeMap::new(),
        }
    }

    fn finished(&mut self, connection: ConnectionId) {
        let Some(address) = self.pending.remove(&connection) else {
            return;
        };
        if let Some(count) = self.per_address.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
    }
}

/// Who a dialler is counted as, from the IP address at the start of its `/ip4/../tcp/..`
/// or `/ip6/..` address: the IPv4 address, or the /64 network of an IPv6 one (its last 64
/// bits zero); `None` for other addresses (not counted: the node listens on TCP alone).
fn source_of(address: &Multiaddr) -> Option<IpAddr> {
    match address.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(ip) & !u128::from(u64::MAX);
                IpAddr::V6(std::net::Ipv6Addr::from(network))
            }
        }),
        _ => None,
    }
}

impl NetworkBehaviour for HandshakesPerAddress {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(address) = source_of(remote_addr) else {
            return Ok(());
        };
        let pending = self.per_address.get(&address).copied().unwrap_or(0);
        if pending >= self.max {
            return Err(ConnectionDenied::new(TooManyHandshakes {
                address,
                pending,
                max: self.max,
            }));
        }
        self.per_address.insert(address, pending.saturating_add(1));
        self.pending.insert(connection, address);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.finished(connection);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A handshake that failed, timed out or was refused by another behaviour ends here.
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.finished(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_crypto::SigningKey;

    fn from(ip: &str) -> Result<Multiaddr, libp2p::core::multiaddr::Error> {
        format!("/ip4/{ip}/tcp/40000").parse()
    }

    fn failed(cap: &mut HandshakesPerAddress, id: ConnectionId, addr: &Multiaddr) {
        let error = libp2p::swarm::ListenError::Aborted;
        cap.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: addr,
            send_back_addr: addr,
            error: &error,
            connection_id: id,
            peer_id: None,
        }));
    }

    #[test]
    fn one_address_is_capped_and_others_are_not() -> Result<(), Box<dyn std::error::Error>> {
        let mut cap = HandshakesPerAddress::new(2);
        let local = from("127.0.0.1")?;
        let attacker = from("10.0.0.9")?;
        let honest = from("10.0.0.1")?;
        let first = ConnectionId::new_unchecked(1);
        let second = ConnectionId::new_unchecked(2);
        cap.handle_pending_inbound_connection(first, &local, &attacker)?;
        cap.handle_pending_inbound_connection(second, &local, &attacker)?;
        let refused = cap
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(3), &local, &attacker)
            .err()
            .ok_or("a third handshake from one address was let in")?;
        assert!(refused.downcast_ref::<TooManyHandshakes>().is_some());
        cap.handle_pending_inbound_connection(ConnectionId::new_unchecked(4), &local, &honest)?;

        // A slot comes back when a handshake fails and when one completes.
        failed(&mut cap, first, &attacker);
        cap.handle_pending_inbound_connection(ConnectionId::new_unchecked(5), &local, &attacker)?;
        let peer = super::super::identity::peer_id(&SigningKey::from_seed([1; 32]).public_key())?;
        cap.handle_established_inbound_connection(second, peer, &local, &attacker)?;
        cap.handle_pending_inbound_connection(ConnectionId::new_unchecked(6), &local, &attacker)?;
        assert!(
            cap.handle_pending_inbound_connection(
                ConnectionId::new_unchecked(7),
                &local,
                &attacker
            )
            .is_err()
        );
        // Ending an unknown or already ended connection changes nothing.
        failed(&mut cap, first, &attacker);
        failed(&mut cap, ConnectionId::new_unchecked(99), &attacker);
        assert_eq!(
            cap.per_address.get(&"10.0.0.9".parse::<IpAddr>()?),
            Some(&2)
        );
        Ok(())
    }

    /// The attacker holds a /64 and dials from a new address each time: it is one source.
    #[test]
    fn an_ipv6_network_is_one_source() -> Result<(), Box<dyn std::error::Error>> {
        let mut cap = HandshakesPerAddress::new(2);
        let local: Multiaddr = "/ip6/::1/tcp/9000".parse()?;
        let dial = |ip: &str| format!("/ip6/{ip}/tcp/40000").parse::<Multiaddr>();
        cap.handle_pending_inbound_connection(
            ConnectionId::new_unchecked(1),
            &local,
            &dial("2001:db8:1:2::1")?,
        )?;
        cap.handle_pending_inbound_connection(
            ConnectionId::new_unchecked(2),
            &local,
            &dial("2001:db8:1:2:ffff:ffff:ffff:fffe")?,
        )?;
        assert!(
            cap.handle_pending_inbound_connection(
                ConnectionId::new_unchecked(3),
                &local,
                &dial("2001:db8:1:2:dead:beef:0:7")?
            )
            .is_err(),
            "a third handshake from the same /64 was let in"
        );
        // The next /64 is another source.
        cap.handle_pending_inbound_connection(
            ConnectionId::new_unchecked(4),
            &local,
            &dial("2001:db8:1:3::1")?,
        )?;
        assert_eq!(
            cap.per_address.get(&"2001:db8:1:2::".parse::<IpAddr>()?),
            Some(&2)
        );

        // An IPv4 host seen through a dual-stack listener is counted as itself.
        let mut cap = HandshakesPerAddress::new(1);
        cap.handle_pending_inbound_connection(
            ConnectionId::new_unchecked(5),
            &local,
            &from("10.0.0.9")?,
        )?;
        assert!(
            cap.handle_pending_inbound_connection(
                ConnectionId::new_unchecked(6),
                &local,
                &dial("::ffff:10.0.0.9")?
            )
            .is_err(),
            "the IPv4-mapped form of a capped address was let in"
        );
        Ok(())
    }
}
