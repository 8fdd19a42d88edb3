//! `tenantry rotate-encryption-key` on PostgreSQL: the SQLite rotation's one transaction, taken
//! under the start-up lock and only when no replica is alive, since every replica holds the
//! master key in memory from its start and would go on sealing with the old one.
use super::instance::{CHECK, PARAMS, SALT};
use super::master::KeyRecord;
use super::secret::{hex, unhex};
use crate::config::Config;
use crate::crypto::{self, KdfParams, MasterKey};
use crate::db::pg::{describe, meta, migrate, Pg};
use deadpool_postgres::Transaction;

/// Re-encrypts every provider key and webhook secret from `ENCRYPTION_KEY_OLD` to
/// `ENCRYPTION_KEY`, all or nothing. Returns how many of each.
pub async fn rotate(config: &Config, url: &str) -> Result<(usize, usize), String> {
    let (old, new) = super::instance::rotation_secrets(config)?;
    let fail = |e: tokio_postgres::Error| describe(&e);
    let pg = Pg::open(url, 1).await?;
    let mut c = pg.client().await?;
    let tx = c.transaction().await.map_err(fail)?;
    // Replicas starting now wait for this lock, then open the new key.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrate::LOCK])
        .await
        .map_err(fail)?;
    let alive: i64 = tx
        .query_one(
            "SELECT count(*) FROM replicas WHERE seen_at > now() - interval '10 seconds'",
            &[],
        )
        .await
        .map_err(fail)?
        .get(0);
    if alive > 0 {
        return Err(format!(
            "{alive} replica(s) serve this database (a heartbeat in the last 10 s); stop every \
             replica first: each holds the current key until it restarts"
        ));
    }
    let record = record(&tx)
        .await?
        .ok_or("this database has no encryption key yet; start a replica once first")?;
    let old_key = record
        .open_with(old.expose())?
        .ok_or("ENCRYPTION_KEY_OLD is not the key this database was encrypted with")?;
    let salt = crypto::random_salt();
    let new_key = MasterKey::derive(new.expose(), &salt, &config.kdf).map_err(|e| e.to_string())?;
    for (k, v) in [
        (SALT, hex(&salt)),
        (PARAMS, config.kdf.to_string()),
        (CHECK, new_key.check_value()),
    ] {
        meta::set(&*tx, k, &v)
            .await
            .map_err(|e| format!("cannot write {k}: {}", describe(&e)))?;
    }
    let keys = reseal_provider_keys(&tx, &old_key, &new_key).await?;
    let hooks = crate::webhooks::store_pg::all_sealed(&*tx)
        .await
        .map_err(fail)?;
    for (endpoint, tenant, column, sealed) in &hooks {
        let bind = crate::webhooks::service::binding(&endpoint.to_string());
        let resealed = crypto::reseal(&old_key, &new_key, sealed, *tenant, &bind)
            .map_err(|e| format!("the secret of webhook {endpoint} does not open: {e}"))?;
        crate::webhooks::store_pg::set_sealed(&*tx, *endpoint, column, &resealed)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok((keys, hooks.len()))
}

async fn record(tx: &Transaction<'_>) -> Result<Option<KeyRecord>, String> {
    let mut got = Vec::new();
    for key in [SALT, PARAMS, CHECK] {
        got.push(
            meta::get(&**tx, key)
                .await
                .map_err(|e| format!("cannot read {key}: {}", describe(&e)))?,
        );
    }
    match (got[0].take(), got[1].take(), got[2].take()) {
        (Some(salt), Some(p), Some(check)) => Ok(Some(KeyRecord {
            salt: unhex(&salt).ok_or("the stored encryption salt is damaged")?,
            params: KdfParams::parse(&p).map_err(|e| e.to_string())?,
            check,
        })),
        _ => Ok(None),
    }
}

async fn reseal_provider_keys(
    tx: &Transaction<'_>,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, String> {
    let fail = |e: tokio_postgres::Error| describe(&e);
    let rows = tx
        .query(
            "SELECT tenant_id, provider, ciphertext FROM provider_keys ORDER BY tenant_id, provider",
            &[],
        )
        .await
        .map_err(fail)?;
    for r in &rows {
        let (tenant, provider, sealed): (uuid::Uuid, String, Vec<u8>) =
            (r.get(0), r.get(1), r.get(2));
        let resealed = crypto::reseal(old, new, &sealed, tenant, &provider)
            .map_err(|e| format!("the {provider} key of tenant {tenant} does not open: {e}"))?;
        tx.execute(
            "UPDATE provider_keys SET ciphertext = $3 WHERE tenant_id = $1 AND provider = $2",
            &[&tenant, &provider, &resealed],
        )
        .await
        .map_err(fail)?;
    }
    Ok(rows.len())
}
