//! The AES-256 master key that seals provider keys: derived with scrypt from the operator's
//! secret and a per-instance salt, named by a key id, and checked against a stored check value.
use super::envelope::CryptoError;
use super::secret::hex;
use aes_gcm::{Aes256Gcm, Key, KeyInit};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// scrypt cost parameters, stored beside the salt so a key derives the same way forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl Default for KdfParams {
    /// scrypt's recommended interactive cost: 2^15 × 8 × 1 (32 MiB, tens of milliseconds), paid
    /// once per start.
    fn default() -> Self {
        KdfParams {
            log_n: 15,
            r: 8,
            p: 1,
        }
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scrypt:{}:{}:{}", self.log_n, self.r, self.p)
    }
}

impl KdfParams {
    pub fn parse(s: &str) -> Result<KdfParams, CryptoError> {
        let bad =
            || CryptoError::BadParams(format!("`{}` is not scrypt:N:r:p", crate::error::clip(s)));
        let parts: Vec<&str> = s.split(':').collect();
        let [name, n, r, p] = parts[..] else {
            return Err(bad());
        };
        if name != "scrypt" {
            return Err(bad());
        }
        let params = KdfParams {
            log_n: n.parse().map_err(|_| bad())?,
            r: r.parse().map_err(|_| bad())?,
            p: p.parse().map_err(|_| bad())?,
        };
        if !(10..=20).contains(&params.log_n)
            || !(1..=32).contains(&params.r)
            || !(1..=16).contains(&params.p)
        {
            return Err(CryptoError::BadParams(format!(
                "{params} is outside the accepted range"
            )));
        }
        Ok(params)
    }
}

/// The AES-256 key that seals provider keys.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

fn tagged_hash(tag: &[u8], key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(key);
    h.finalize().into()
}

impl MasterKey {
    /// Derives the key from the operator's secret; slow on purpose, so called once at start.
    pub fn derive(secret: &str, salt: &[u8], params: &KdfParams) -> Result<MasterKey, CryptoError> {
        let p = scrypt::Params::new(params.log_n, params.r, params.p, 32)
            .map_err(|e| CryptoError::BadParams(e.to_string()))?;
        let mut out = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(secret.as_bytes(), salt, &p, out.as_mut())
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(MasterKey(out))
    }

    /// A non-secret name for the key, written into every envelope it seals.
    pub fn key_id(&self) -> [u8; 8] {
        let h = tagged_hash(b"tenantry-key-id\0", &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        id
    }

    /// Stored in the database so a wrong key is refused at start instead of failing on decrypt.
    pub fn check_value(&self) -> String {
        hex(&tagged_hash(b"tenantry-check\0", &self.0))
    }

    pub fn verify_check(&self, stored: &str) -> bool {
        self.check_value()
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into()
    }

    pub(super) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_ref()))
    }
}

pub fn random_salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    rand::rng().fill_bytes(&mut s);
    s
}

/// A fresh secret for the generated key file: 256 random bits, URL-safe base64.
pub fn generate_secret() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(b.as_mut());
    URL_SAFE_NO_PAD.encode(b.as_ref())
}

/// Where a sealed key's master key came from: salt, parameters and check value, as an instance
/// keeps them in `meta` and a tenant export carries them. None of them is secret.
pub struct KeyRecord {
    pub salt: Vec<u8>,
    pub params: KdfParams,
    pub check: String,
}

impl KeyRecord {
    /// Derives the key from `secret` and confirms it is the one the record was made with.
    pub fn open_with(&self, secret: &str) -> Result<Option<MasterKey>, String> {
        let key = MasterKey::derive(secret, &self.salt, &self.params).map_err(|e| e.to_string())?;
        Ok(key.verify_check(&self.check).then_some(key))
    }
}
