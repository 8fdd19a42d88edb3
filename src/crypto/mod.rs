//! Everything secret: the master key (`master`), the envelope that seals provider keys with it
//! (`envelope`), the instance's key as the operator supplies it and the database records it
//! (`instance`), and secret strings, masking and hex (`secret`).
pub mod envelope;
pub mod instance;
pub mod master;
pub mod rotate_pg;
pub mod secret;

pub use envelope::{envelope_key_id, open, reseal, seal, CryptoError};
pub use master::{generate_secret, random_salt, KdfParams, KeyRecord, MasterKey};
pub use secret::{hex, mask, unhex, SecretString};
