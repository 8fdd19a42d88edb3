//! Sealing provider keys: the scrypt-derived AES-256-GCM master key, a versioned envelope bound
//! to its tenant and provider by associated data, redacting secret types, and masked display.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

/// The envelope format this build writes: `[version][key id: 8][nonce: 12][ciphertext + tag]`.
const FORMAT_V1: u8 = 1;
const HEADER: usize = 1 + 8 + 12;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed with a different encryption key")]
    WrongKey,
    #[error("the sealed value is damaged or belongs to another tenant or provider")]
    Corrupt,
    #[error("unknown envelope format version {0}")]
    UnsupportedVersion(u8),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("bad key derivation parameters: {0}")]
    BadParams(String),
}

/// A secret string: redacted in `Debug` and `Display`, wiped from memory on drop.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The display form of a key: at most the first 3 and last 4 characters, and never half of a
/// short key (a key under 8 characters shows nothing).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=7 => return "***".into(),
        8..=11 => (1, 1),
        12..=15 => (2, 2),
        _ => (3, 4),
    };
    let h: String = chars[..head].iter().collect();
    let t: String = chars[n - tail..].iter().collect();
    format!("{h}...{t}")
}

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
        tagged_hash(b"tenantry-check\0", &self.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn verify_check(&self, stored: &str) -> bool {
        self.check_value()
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into()
    }

    fn cipher(&self) -> Aes256Gcm {
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

/// Associated data: the envelope header, tenant and provider. A ciphertext moved to another row,
/// or a header swapped, fails authentication.
fn aad(header: &[u8], tenant: Uuid, provider: &str) -> Vec<u8> {
    let mut a = b"tenantry/provider-key/v1\0".to_vec();
    a.extend_from_slice(header);
    a.extend_from_slice(tenant.as_bytes());
    a.extend_from_slice(provider.as_bytes());
    a
}

pub fn seal(
    key: &MasterKey,
    plaintext: &str,
    tenant: Uuid,
    provider: &str,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(HEADER + plaintext.len() + TAG);
    out.push(FORMAT_V1);
    out.extend_from_slice(&key.key_id());
    out.extend_from_slice(&nonce);
    let ct = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad(&out, tenant, provider),
            },
        )
        .map_err(|_| CryptoError::Corrupt)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The key id an envelope was sealed with, read without decrypting (for rotation).
pub fn envelope_key_id(envelope: &[u8]) -> Option<[u8; 8]> {
    envelope.get(1..9).and_then(|b| b.try_into().ok())
}

pub fn open(
    key: &MasterKey,
    envelope: &[u8],
    tenant: Uuid,
    provider: &str,
) -> Result<SecretString, CryptoError> {
    let version = *envelope.first().ok_or(CryptoError::Corrupt)?;
    if version != FORMAT_V1 {
        return Err(CryptoError::UnsupportedVersion(version));
    }
    if envelope.len() < HEADER + TAG {
        return Err(CryptoError::Corrupt);
    }
    if envelope_key_id(envelope) != Some(key.key_id()) {
        return Err(CryptoError::WrongKey);
    }
    let (header, ct) = envelope.split_at(HEADER);
    let mut plain = key
        .cipher()
        .decrypt(
            Nonce::from_slice(&header[9..HEADER]),
            Payload {
                msg: ct,
                aad: &aad(header, tenant, provider),
            },
        )
        .map_err(|_| CryptoError::Corrupt)?;
    let s = String::from_utf8(std::mem::take(&mut plain)).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        CryptoError::Corrupt
    })?;
    Ok(SecretString::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            log_n: 10,
            r: 8,
            p: 1,
        }
    }

    fn key(secret: &str) -> MasterKey {
        MasterKey::derive(secret, b"0123456789abcdef", &fast()).unwrap()
    }

    const T: Uuid = Uuid::from_u128(1);

    #[test]
    fn round_trip() {
        let k = key("s");
        let e = seal(&k, "sk-abc", T, "openai").unwrap();
        assert_eq!(open(&k, &e, T, "openai").unwrap().expose(), "sk-abc");
    }

    #[test]
    fn sealing_twice_gives_different_envelopes() {
        let k = key("s");
        assert_ne!(
            seal(&k, "x", T, "openai").unwrap(),
            seal(&k, "x", T, "openai").unwrap()
        );
    }

    #[test]
    fn another_tenant_or_provider_cannot_open() {
        let k = key("s");
        let e = seal(&k, "sk-abc", T, "openai").unwrap();
        assert_eq!(
            open(&k, &e, Uuid::from_u128(2), "openai").unwrap_err(),
            CryptoError::Corrupt
        );
        assert_eq!(
            open(&k, &e, T, "anthropic").unwrap_err(),
            CryptoError::Corrupt
        );
    }

    #[test]
    fn any_flipped_byte_fails() {
        let k = key("s");
        let e = seal(&k, "sk-abcdef", T, "openai").unwrap();
        for i in 0..e.len() {
            let mut bad = e.clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &bad, T, "openai").is_err(), "byte {i}");
        }
    }

    #[test]
    fn truncated_envelopes_fail_without_panic() {
        let k = key("s");
        let e = seal(&k, "sk-abcdef", T, "openai").unwrap();
        for n in 0..e.len() {
            assert!(open(&k, &e[..n], T, "openai").is_err(), "length {n}");
        }
    }

    #[test]
    fn wrong_key_and_unknown_version_are_named() {
        let e = seal(&key("a"), "x", T, "openai").unwrap();
        assert_eq!(
            open(&key("b"), &e, T, "openai").unwrap_err(),
            CryptoError::WrongKey
        );
        let mut v9 = e.clone();
        v9[0] = 9;
        assert_eq!(
            open(&key("a"), &v9, T, "openai").unwrap_err(),
            CryptoError::UnsupportedVersion(9)
        );
        assert_eq!(envelope_key_id(&e), Some(key("a").key_id()));
    }

    #[test]
    fn check_value_detects_a_wrong_key() {
        let check = key("right").check_value();
        assert!(key("right").verify_check(&check));
        assert!(!key("wrong").verify_check(&check));
    }

    #[test]
    fn derivation_depends_on_secret_salt_and_params() {
        let a = key("s").check_value();
        assert_eq!(a, key("s").check_value());
        let other_salt = MasterKey::derive("s", b"fedcba9876543210", &fast()).unwrap();
        assert_ne!(a, other_salt.check_value());
        let default = MasterKey::derive("s", b"0123456789abcdef", &KdfParams::default()).unwrap();
        assert_ne!(a, default.check_value());
    }

    #[test]
    fn masks_show_little_and_never_panic() {
        assert_eq!(mask("sk-proj-abcdef1234"), "sk-...1234");
        assert_eq!(mask(""), "***");
        assert_eq!(mask("abcde"), "***");
        assert_eq!(mask("abcdefgh"), "a...h");
        assert_eq!(mask("abcdefghijkl"), "ab...kl");
        assert_eq!(mask("ключ-секретный-1234"), "клю...1234");
        for n in 0..40 {
            let s = "x".repeat(n);
            let m = mask(&s);
            let shown = m.replace("...", "").replace("***", "").chars().count();
            assert!(shown <= 7 && shown * 2 <= n, "{n}: {m}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("sk-canary".into());
        assert!(!format!("{s:?} {s}").contains("canary"));
        assert!(!format!("{:?}", key("sk-canary")).contains("canary"));
    }

    #[test]
    fn params_round_trip_and_bad_ones_are_refused() {
        let p = KdfParams::default();
        assert_eq!(KdfParams::parse(&p.to_string()).unwrap(), p);
        for bad in [
            "scrypt:9:8:1",
            "scrypt:21:8:1",
            "scrypt:15:0:1",
            "argon2:1:1:1",
            "scrypt:15:8",
            "x",
        ] {
            assert!(KdfParams::parse(bad).is_err(), "{bad}");
        }
    }
}
