//! Sealed secrets on PostgreSQL: every provider key and webhook secret opens with the
//! configured key, bound to its own tenant and owner, as SQLite's checks do.
use super::fail;
use crate::config::Config;
use crate::crypto::{KdfParams, KeyRecord, MasterKey};
use crate::verify::opens;
use tokio_postgres::Transaction;

async fn meta(tx: &Transaction<'_>, key: &str) -> Result<Option<String>, String> {
    Ok(tx
        .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .await
        .map_err(fail)?
        .map(|r| r.get(0)))
}

/// The key the database's secrets were sealed with, from its record in `meta` and the
/// configured secret, as `crypto::instance::existing_master_key` does on SQLite.
async fn master_key(config: &Config, tx: &Transaction<'_>) -> Result<Option<MasterKey>, String> {
    let (salt, params, check) = (
        meta(tx, "encryption_salt").await?,
        meta(tx, "encryption_kdf").await?,
        meta(tx, "encryption_check").await?,
    );
    let (Some(salt), Some(params), Some(check)) = (salt, params, check) else {
        return Ok(None);
    };
    let record = KeyRecord {
        salt: crate::crypto::unhex(&salt).ok_or("the stored encryption salt is damaged")?,
        params: KdfParams::parse(&params).map_err(|e| e.to_string())?,
        check,
    };
    let secret = crate::crypto::instance::configured_secret(config).ok_or_else(|| {
        format!(
            "ENCRYPTION_KEY is not set and {} cannot be read",
            crate::crypto::instance::key_file(config).display()
        )
    })?;
    match record.open_with(secret.expose())? {
        Some(key) => Ok(Some(key)),
        None => Err("ENCRYPTION_KEY is not the key this database was encrypted with".into()),
    }
}

pub(super) async fn provider_keys(
    config: &Config,
    tx: &Transaction<'_>,
) -> Result<Vec<String>, String> {
    let rows = tx
        .query(
            "SELECT tenant_id::text, provider, ciphertext FROM provider_keys ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(fail)?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let Some(key) = master_key(config, tx).await? else {
        return Err("provider keys are stored but no encryption key is installed".into());
    };
    let mut problems = Vec::new();
    for r in rows {
        let (tenant, provider, sealed): (String, String, Vec<u8>) = (r.get(0), r.get(1), r.get(2));
        if let Err(e) = opens(&key, &sealed, &tenant, &provider) {
            problems.push(format!(
                "tenant {tenant}: table provider_keys, the {provider} key does not open ({e})"
            ));
        }
    }
    Ok(problems)
}

pub(super) async fn webhook_secrets(
    config: &Config,
    tx: &Transaction<'_>,
) -> Result<Vec<String>, String> {
    let rows = tx
        .query(
            "SELECT id::text, tenant_id::text, secret, previous_secret FROM webhook_endpoints
             ORDER BY id",
            &[],
        )
        .await
        .map_err(fail)?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let Some(key) = master_key(config, tx).await? else {
        return Err("webhook secrets are stored but no encryption key is installed".into());
    };
    let mut problems = Vec::new();
    for r in rows {
        let (endpoint, tenant): (String, String) = (r.get(0), r.get(1));
        let bind = crate::webhooks::service::binding(&endpoint);
        let sealed = [
            ("secret", Some(r.get::<_, Vec<u8>>(2))),
            ("previous_secret", r.get::<_, Option<Vec<u8>>>(3)),
        ];
        for (column, value) in sealed {
            let Some(value) = value else { continue };
            if let Err(e) = opens(&key, &value, &tenant, &bind) {
                problems.push(format!(
                    "tenant {tenant}: webhook {endpoint}, its {column} does not open ({e})"
                ));
            }
        }
    }
    Ok(problems)
}
