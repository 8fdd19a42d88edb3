//! The envelope that seals a provider key: AES-256-GCM under the master key, versioned, and bound
//! to its tenant and provider by associated data, so a ciphertext moved elsewhere does not open.
use super::master::MasterKey;
use super::secret::SecretString;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use rand::RngCore;
use uuid::Uuid;
use zeroize::Zeroize;

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

/// Opens `sealed` with `from` and seals it again with `to` for the same tenant and provider
/// (key rotation, and importing a tenant exported under another instance's key).
pub fn reseal(
    from: &MasterKey,
    to: &MasterKey,
    sealed: &[u8],
    tenant: Uuid,
    provider: &str,
) -> Result<Vec<u8>, CryptoError> {
    let plain = open(from, sealed, tenant, provider)?;
    seal(to, plain.expose(), tenant, provider)
}

#[cfg(test)]
mod tests {
    use super::super::master::KdfParams;
    use super::super::secret::mask;
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
        let s = SecretString::new("sk-canary");
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
