//! Tally keys as libp2p identities: a node's libp2p keypair is its tally ed25519 key, so a
//! validator's `PeerId` follows from the public key listed for it in the genesis.

use libp2p::{PeerId, identity};
use tally_crypto::{PublicKey, SigningKey};

use super::NetworkError;

/// The libp2p keypair of the node holding `key`.
pub fn keypair(key: &SigningKey) -> Result<identity::Keypair, NetworkError> {
    let mut seed = key.seed();
    // `ed25519_from_bytes` zeroizes the buffer it is given.
    identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| NetworkError::Setup(format!("signing key refused by libp2p: {e}")))
}

/// The libp2p peer id of the node whose tally public key is `key`.
pub fn peer_id(key: &PublicKey) -> Result<PeerId, NetworkError> {
    let ed25519 = identity::ed25519::PublicKey::try_from_bytes(&key.0)
        .map_err(|_| NetworkError::BadPublicKey(*key))?;
    Ok(identity::PublicKey::from(ed25519).to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_from_public_key_matches_the_keypair() {
        let key = SigningKey::from_seed([3; 32]);
        let from_keypair = keypair(&key).map(|k| k.public().to_peer_id()).ok();
        let from_public = peer_id(&key.public_key()).ok();
        assert!(from_keypair.is_some());
        assert_eq!(from_keypair, from_public);
        let other = peer_id(&SigningKey::from_seed([4; 32]).public_key()).ok();
        assert_ne!(from_public, other);
    }
}
