//! Test-only Byzantine behaviour of a validator, switched on by `[test_faults]` in the config
//! (see [`crate::config::TestFaults`]). The chain task calls in here at two points only:
//! every consensus message it is about to send ([`Faults::outgoing`]) and every block it
//! proposes ([`Faults::proposed_block`]). The honest path never sees this module.
//!
//! Test equipment is not part of the product: the faulty validator is compiled only with
//! the `test-faults` cargo feature, which the test suites turn on (dev-dependencies) and
//! release and default builds leave off. Without it, [`Faults`] is a type with no values,
//! so the chain task's hooks still compile but can never be taken, `[test_faults]` in a
//! config is refused, and no fault mode is in the binary (`.ci/run` checks with `strings`).

#[cfg(feature = "test-faults")]
mod byzantine;

#[cfg(not(feature = "test-faults"))]
pub use absent::Faults;
#[cfg(feature = "test-faults")]
pub use byzantine::Faults;

use tally_crypto::PublicKey;

/// Who a consensus message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every connected validator.
    All,
    Only(Vec<PublicKey>),
}

/// What a build without the `test-faults` feature has in place of the faulty validator:
/// made only from a [`Byzantine`](crate::config::Byzantine), of which such a build has no
/// value, and honest if it were.
#[cfg(not(feature = "test-faults"))]
mod absent {
    use tally_consensus::Message;
    use tally_crypto::{PublicKey, SigningKey};

    use super::Recipients;
    use crate::config::Byzantine;

    #[derive(Debug)]
    pub struct Faults(());

    impl Faults {
        pub fn new(_byzantine: Byzantine, _key: SigningKey, _chain_id: &str) -> Faults {
            Faults(())
        }

        pub fn outgoing(
            &self,
            message: Message,
            _others: &[PublicKey],
        ) -> Vec<(Recipients, Message)> {
            vec![(Recipients::All, message)]
        }

        pub fn proposed_block(&self, block: Vec<u8>) -> Vec<u8> {
            block
        }
    }
}
