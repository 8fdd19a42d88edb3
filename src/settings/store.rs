//! The settings area's SQL: settings versions (every change is a new row, with who made it) and
//! the sealed provider keys.
use super::cache::Current;
use super::provider_keys::MaskedKey;
use super::Settings;
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

pub fn parse_body(body: &str) -> rusqlite::Result<Settings> {
    serde_json::from_str(body).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Writes version `version` of a tenant's settings. Used by tenant creation (version 1) too.
pub fn write_version(
    c: &Connection,
    tenant: TenantId,
    version: i64,
    settings: &Settings,
    changed_by: &str,
    at: Micros,
) -> Result<Current, ApiError> {
    let body = serde_json::to_string(settings).map_err(ApiError::internal)?;
    c.execute(
        "INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant.to_string(), version, body, changed_by, at],
    )?;
    Ok(Current {
        version,
        settings: settings.clone(),
        changed_at: at,
    })
}

pub fn latest(c: &Connection, tenant: TenantId) -> Result<Current, ApiError> {
    let row: Option<(i64, String, Micros)> = c
        .query_row(
            "SELECT version, body, changed_at FROM settings_versions
             WHERE tenant_id = ?1 ORDER BY version DESC LIMIT 1",
            [tenant.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        Some((version, body, changed_at)) => Current {
            version,
            settings: parse_body(&body)?,
            changed_at,
        },
        None => Current {
            version: 0,
            settings: Settings::default(),
            changed_at: 0,
        },
    })
}

#[derive(Debug)]
pub struct HistoryEntry {
    pub version: i64,
    pub settings: Value,
    pub changed_by: String,
    pub changed_at: Micros,
}

/// What changed between two settings, by top-level field, for the event's data.
pub fn changed_fields(old: &Settings, new: &Settings) -> Vec<String> {
    let (a, b) = (json!(old), json!(new));
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// The body of one version, when it exists.
pub fn version_body(
    c: &Connection,
    tenant: TenantId,
    version: i64,
) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT body FROM settings_versions WHERE tenant_id = ?1 AND version = ?2",
        params![tenant.to_string(), version],
        |r| r.get(0),
    )
    .optional()
}

/// One page of the history, newest first, each version shown with defaults filled in.
pub fn history(
    c: &Connection,
    tenant: &str,
    page: &PageRequest<i64>,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT version, body, changed_by, changed_at FROM settings_versions
         WHERE tenant_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![tenant, page.after.unwrap_or(i64::MAX), page.fetch()],
        |r| {
            let body: String = r.get(1)?;
            // Shown with defaults filled in, as GET /api/settings shows them.
            let settings = json!(parse_body(&body)?);
            Ok(HistoryEntry {
                version: r.get(0)?,
                settings,
                changed_by: r.get(2)?,
                changed_at: r.get(3)?,
            })
        },
    )?;
    rows.collect()
}

pub fn masked_provider_keys(c: &Connection, tenant: &str) -> rusqlite::Result<Vec<MaskedKey>> {
    let mut stmt = c.prepare_cached(
        "SELECT provider, masked, updated_at FROM provider_keys
         WHERE tenant_id = ?1 ORDER BY provider",
    )?;
    let rows = stmt.query_map([tenant], |r| {
        Ok(MaskedKey {
            provider: r.get(0)?,
            masked: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    rows.collect()
}

pub fn put_provider_key(
    c: &Connection,
    tenant: TenantId,
    provider: &str,
    sealed: &[u8],
    masked: &str,
    now: Micros,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO provider_keys (tenant_id, provider, ciphertext, masked, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext,
             masked = excluded.masked, updated_at = excluded.updated_at",
        params![tenant.to_string(), provider, sealed, masked, now],
    )?;
    Ok(())
}

/// False when the tenant had no key for `provider`.
pub fn delete_provider_key(
    c: &Connection,
    tenant: TenantId,
    provider: &str,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM provider_keys WHERE tenant_id = ?1 AND provider = ?2",
        params![tenant.to_string(), provider],
    )?;
    Ok(n > 0)
}

pub fn sealed_provider_key(
    c: &Connection,
    tenant: TenantId,
    provider: &str,
) -> rusqlite::Result<Option<Vec<u8>>> {
    c.query_row(
        "SELECT ciphertext FROM provider_keys WHERE tenant_id = ?1 AND provider = ?2",
        params![tenant.to_string(), provider],
        |r| r.get(0),
    )
    .optional()
}

/// Every tenant's latest version, for the cache at start.
pub fn current_versions(c: &Connection) -> rusqlite::Result<Vec<(TenantId, Current)>> {
    // SQLite takes the bare columns of an aggregate query from the row holding the max().
    let mut stmt = c.prepare(
        "SELECT tenant_id, max(version), body, changed_at FROM settings_versions
         GROUP BY tenant_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let body: String = r.get(2)?;
        Ok((
            r.get::<_, TenantId>(0)?,
            Current {
                version: r.get(1)?,
                settings: parse_body(&body)?,
                changed_at: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}
