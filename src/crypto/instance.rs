//! The instance's master key for provider keys: from `ENCRYPTION_KEY`, or from a generated
//! `encryption.key` (mode 0600) in the data dir. Derived with scrypt once at start from a
//! per-instance salt kept in `meta` (a `KeyRecord`); its check value refuses a wrong key at
//! start-up. Also the rotation from one key to another.
use super::master::KeyRecord;
use super::secret::{hex, unhex};
use crate::config::{Config, Secret};
use crate::crypto::{self, KdfParams, MasterKey};
use rusqlite::{params, Connection, Transaction};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) const SALT: &str = "encryption_salt";
pub(super) const PARAMS: &str = "encryption_kdf";
pub(super) const CHECK: &str = "encryption_check";

pub fn key_file(config: &Config) -> PathBuf {
    config.data_dir.join("encryption.key")
}

fn meta(c: &Connection, key: &str) -> Result<Option<String>, String> {
    crate::db::meta::get(c, key).map_err(|e| format!("cannot read {key}: {e}"))
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), String> {
    crate::db::meta::set(tx, key, value).map_err(|e| format!("cannot write {key}: {e}"))
}

/// The record of the key this database's provider keys are sealed with; `None` before the
/// first start installed one.
pub fn record(c: &Connection) -> Result<Option<KeyRecord>, String> {
    match (meta(c, SALT)?, meta(c, PARAMS)?, meta(c, CHECK)?) {
        (Some(salt), Some(p), Some(check)) => Ok(Some(KeyRecord {
            salt: unhex(&salt).ok_or("the stored encryption salt is damaged")?,
            params: KdfParams::parse(&p).map_err(|e| e.to_string())?,
            check,
        })),
        _ => Ok(None),
    }
}

/// Reads the key file, or, for a database that holds no encrypted key yet (`may_create`),
/// creates it with a fresh secret (mode 0600). Returns the secret and whether it was created now.
fn file_secret(path: &Path, may_create: bool) -> Result<(Secret, bool), String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok((Secret::new(s.trim()), false)),
        Ok(_) => {
            return Err(format!(
                "{} is empty; restore it or set ENCRYPTION_KEY",
                path.display()
            ))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot read {}: {e}", path.display()))
        }
        Err(_) if !may_create => {
            // A new key would not open what this database holds, and would then be mistaken
            // for the real one on every later start.
            return Err(format!(
                "{} is missing and this database's provider keys were sealed with a key; restore \
                 that file from a backup or set ENCRYPTION_KEY",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let secret = crypto::generate_secret();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(secret.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((Secret::new(secret), true))
}

/// The master key for this instance, and a warning to print when the key file was generated.
pub fn master_key(
    config: &Config,
    c: &mut Connection,
) -> Result<(MasterKey, Option<String>), String> {
    let stored = record(c)?;
    let (secret, notice) = match &config.encryption_key {
        Some(s) => (s.clone(), None),
        None => {
            let path = key_file(config);
            let (s, created) = file_secret(&path, stored.is_none())?;
            let notice = created.then(|| {
                format!(
                    "warning: ENCRYPTION_KEY is not set; generated one into {} (mode 0600). \
                     Back it up: provider keys cannot be read without it",
                    path.display()
                )
            });
            (s, notice)
        }
    };
    match stored {
        Some(record) => match record.open_with(secret.expose())? {
            Some(key) => Ok((key, notice)),
            None => Err(format!(
                "{} does not match the key this database was encrypted with; set the right \
                 one, or change keys with `tenantry rotate-encryption-key`",
                if config.encryption_key.is_some() {
                    "ENCRYPTION_KEY"
                } else {
                    "the key file"
                }
            )),
        },
        None => {
            let key = install(c, secret.expose(), &config.kdf)?;
            Ok((key, notice))
        }
    }
}

/// `record` on PostgreSQL.
pub async fn record_pg(
    c: &impl tokio_postgres::GenericClient,
) -> Result<Option<KeyRecord>, String> {
    use crate::db::pg::{describe, meta};
    let read = |key: &'static str| async move {
        meta::get(c, key)
            .await
            .map_err(|e| format!("cannot read {key}: {}", describe(&e)))
    };
    Ok(
        match (read(SALT).await?, read(PARAMS).await?, read(CHECK).await?) {
            (Some(salt), Some(p), Some(check)) => Some(KeyRecord {
                salt: unhex(&salt).ok_or("the stored encryption salt is damaged")?,
                params: KdfParams::parse(&p).map_err(|e| e.to_string())?,
                check,
            }),
            _ => None,
        },
    )
}

/// The master key on PostgreSQL, inside the caller's transaction (which holds the start-up
/// advisory lock: replicas starting together on an empty database install one salt, not one
/// each). `ENCRYPTION_KEY` is required there: a key file generated into each replica's data
/// dir would differ from replica to replica.
pub async fn master_key_pg(
    config: &Config,
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<MasterKey, String> {
    use crate::db::pg::{describe, meta};
    let secret = config.encryption_key.as_ref().ok_or(
        "on PostgreSQL ENCRYPTION_KEY must be set (the same on every replica): a generated key \
         file would differ between replicas",
    )?;
    match record_pg(tx).await? {
        Some(record) => record.open_with(secret.expose())?.ok_or_else(|| {
            "ENCRYPTION_KEY does not match the key this database was encrypted with".to_string()
        }),
        None => {
            let salt = crypto::random_salt();
            let key = MasterKey::derive(secret.expose(), &salt, &config.kdf)
                .map_err(|e| e.to_string())?;
            for (k, v) in [
                (SALT, hex(&salt)),
                (PARAMS, config.kdf.to_string()),
                (CHECK, key.check_value()),
            ] {
                meta::set(tx, k, &v)
                    .await
                    .map_err(|e| format!("cannot write {k}: {}", describe(&e)))?;
            }
            Ok(key)
        }
    }
}

/// Derives a key from `secret` with a fresh salt and records salt, parameters and check value.
fn install(c: &mut Connection, secret: &str, params: &KdfParams) -> Result<MasterKey, String> {
    let tx = c.transaction().map_err(|e| e.to_string())?;
    let key = install_in(&tx, secret, params)?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(key)
}

fn install_in(tx: &Transaction<'_>, secret: &str, params: &KdfParams) -> Result<MasterKey, String> {
    let salt = crypto::random_salt();
    let key = MasterKey::derive(secret, &salt, params).map_err(|e| e.to_string())?;
    set_meta(tx, SALT, &hex(&salt))?;
    set_meta(tx, PARAMS, &params.to_string())?;
    set_meta(tx, CHECK, &key.check_value())?;
    Ok(key)
}

/// The (old, new) secrets a rotation needs, refused when missing or equal.
pub(super) fn rotation_secrets(config: &Config) -> Result<(&Secret, &Secret), String> {
    let old = config
        .encryption_key_old
        .as_ref()
        .ok_or("ENCRYPTION_KEY_OLD must hold the current key")?;
    let new = config
        .encryption_key
        .as_ref()
        .ok_or("ENCRYPTION_KEY must hold the new key")?;
    if old.expose() == new.expose() {
        return Err("ENCRYPTION_KEY and ENCRYPTION_KEY_OLD are the same".into());
    }
    Ok((old, new))
}

/// Re-encrypts every provider key from `ENCRYPTION_KEY_OLD` to `ENCRYPTION_KEY` in one
/// transaction, with the webhook secrets; on any failure nothing changes. Returns how many
/// provider keys and webhook secrets were re-encrypted.
pub fn rotate(config: &Config, c: &mut Connection) -> Result<(usize, usize), String> {
    let (old, new) = rotation_secrets(config)?;
    let record =
        record(c)?.ok_or("this database has no encryption key yet; start the server once first")?;
    let old_key = record
        .open_with(old.expose())?
        .ok_or("ENCRYPTION_KEY_OLD is not the key this database was encrypted with")?;
    let tx = c.transaction().map_err(|e| e.to_string())?;
    let new_key = install_in(&tx, new.expose(), &config.kdf)?;
    let rows: Vec<(String, String, Vec<u8>)> = {
        let mut stmt = tx
            .prepare("SELECT tenant_id, provider, ciphertext FROM provider_keys")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| e.to_string())?;
        rows
    };
    for (tenant, provider, sealed) in &rows {
        let tid = uuid::Uuid::parse_str(tenant).map_err(|e| e.to_string())?;
        let resealed = crypto::reseal(&old_key, &new_key, sealed, tid, provider)
            .map_err(|e| format!("the {provider} key of tenant {tenant} does not open: {e}"))?;
        tx.execute(
            "UPDATE provider_keys SET ciphertext = ?3 WHERE tenant_id = ?1 AND provider = ?2",
            params![tenant, provider, resealed],
        )
        .map_err(|e| e.to_string())?;
    }
    // Webhook secrets are sealed with the same key.
    let hooks = crate::webhooks::store::all_sealed(&tx).map_err(|e| e.to_string())?;
    for (endpoint, tenant, column, sealed) in &hooks {
        let tid = uuid::Uuid::parse_str(tenant).map_err(|e| e.to_string())?;
        let bind = crate::webhooks::service::binding(endpoint);
        let resealed = crypto::reseal(&old_key, &new_key, sealed, tid, &bind)
            .map_err(|e| format!("the secret of webhook {endpoint} does not open: {e}"))?;
        crate::webhooks::store::set_sealed(&tx, endpoint, column, &resealed)
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok((rows.len(), hooks.len()))
}

/// The operator's secret as configured, for commands that only read: `ENCRYPTION_KEY`, or an
/// existing key file; never generated. `None` when neither is there.
pub fn configured_secret(config: &Config) -> Option<Secret> {
    match &config.encryption_key {
        Some(s) => Some(s.clone()),
        None => match std::fs::read_to_string(key_file(config)) {
            Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
            _ => None,
        },
    }
}

/// The master key this database's provider keys were sealed with, for commands that only read
/// (`tenantry verify`): from `ENCRYPTION_KEY` or an existing key file, never generating or
/// installing one. `None` when the database has no key installed yet.
pub fn existing_master_key(config: &Config, c: &Connection) -> Result<Option<MasterKey>, String> {
    let Some(record) = record(c)? else {
        return Ok(None);
    };
    let secret = configured_secret(config).ok_or_else(|| {
        format!(
            "ENCRYPTION_KEY is not set and {} cannot be read",
            key_file(config).display()
        )
    })?;
    match record.open_with(secret.expose())? {
        Some(key) => Ok(Some(key)),
        None => Err("ENCRYPTION_KEY is not the key this database was encrypted with".into()),
    }
}
