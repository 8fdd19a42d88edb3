//! The admin token: from `TENANTRY_ADMIN_TOKEN`, or generated on first start, and kept only as a
//! SHA-256 hash in `meta`. A configured token replaces the stored hash, so starting once with the
//! variable set recovers a lost token for good. Tokens are compared as hashes in constant time.
use crate::config::Secret;
use rand::RngCore;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub struct AdminToken {
    hash: [u8; 32],
}

pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes, URL-safe base64, behind a prefix.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

impl AdminToken {
    /// Returns the token's verifier and, when one was generated now, the token itself (the only
    /// time it exists outside the operator's hands).
    pub fn setup(
        c: &Connection,
        configured: Option<&Secret>,
    ) -> rusqlite::Result<(AdminToken, Option<String>)> {
        if let Some(t) = configured {
            let hash = sha256(t.expose());
            store(c, &hash)?;
            return Ok((AdminToken { hash }, None));
        }
        let stored = super::store::admin_token_hash(c)?
            .and_then(|h| crate::crypto::unhex(&h))
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let Some(hex) = stored {
            return Ok((AdminToken { hash: hex }, None));
        }
        let token = random_token("ta_", 32);
        let hash = sha256(&token);
        store(c, &hash)?;
        Ok((AdminToken { hash }, Some(token)))
    }

    /// As `setup`, on PostgreSQL, inside the start-up transaction (which holds the advisory
    /// lock: of replicas starting together on an empty database, one generates the token and
    /// prints it; the others find its hash).
    pub async fn setup_pg(
        tx: &tokio_postgres::Transaction<'_>,
        configured: Option<&Secret>,
    ) -> Result<(AdminToken, Option<String>), tokio_postgres::Error> {
        use crate::db::pg::meta;
        if let Some(t) = configured {
            let hash = sha256(t.expose());
            meta::set(
                tx,
                super::store::ADMIN_TOKEN_KEY,
                &crate::crypto::hex(&hash),
            )
            .await?;
            return Ok((AdminToken { hash }, None));
        }
        let stored = meta::get(tx, super::store::ADMIN_TOKEN_KEY)
            .await?
            .and_then(|h| crate::crypto::unhex(&h))
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let Some(hash) = stored {
            return Ok((AdminToken { hash }, None));
        }
        let token = random_token("ta_", 32);
        let hash = sha256(&token);
        meta::set(
            tx,
            super::store::ADMIN_TOKEN_KEY,
            &crate::crypto::hex(&hash),
        )
        .await?;
        Ok((AdminToken { hash }, Some(token)))
    }

    /// The proof of admin, when `presented` is the admin token.
    pub fn verify(&self, presented: &str) -> Option<super::AdminProof> {
        let ok: bool = sha256(presented).ct_eq(&self.hash).into();
        ok.then(super::AdminProof::new)
    }
}

fn store(c: &Connection, hash: &[u8; 32]) -> rusqlite::Result<()> {
    super::store::set_admin_token_hash(c, &crate::crypto::hex(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        c
    }

    #[test]
    fn generated_once_then_verified_from_the_stored_hash() {
        let c = db();
        let (first, token) = AdminToken::setup(&c, None).unwrap();
        let token = token.expect("generated on first start");
        assert!(first.verify(&token).is_some());
        let (again, none) = AdminToken::setup(&c, None).unwrap();
        assert!(none.is_none(), "never printed twice");
        assert!(again.verify(&token).is_some());
        assert!(again.verify("ta_wrong").is_none());
        let stored: String = c
            .query_row("SELECT value FROM meta", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&token));
    }

    #[test]
    fn a_configured_token_replaces_the_stored_one_for_good() {
        let c = db();
        let (_, lost) = AdminToken::setup(&c, None).unwrap();
        let lost = lost.unwrap();
        let (t, gen) = AdminToken::setup(&c, Some(&Secret::new("configured-token-123"))).unwrap();
        assert!(gen.is_none());
        assert!(t.verify("configured-token-123").is_some());
        assert!(t.verify(&lost).is_none());
        // Started again without the variable: the new token stays, nothing is printed.
        let (after, gen) = AdminToken::setup(&c, None).unwrap();
        assert!(gen.is_none());
        assert!(after.verify("configured-token-123").is_some());
        assert!(after.verify(&lost).is_none());
        let stored: String = c
            .query_row("SELECT value FROM meta", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains("configured-token-123"), "only the hash");
    }
}
