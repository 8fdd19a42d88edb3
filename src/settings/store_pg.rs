//! The settings area's SQL on PostgreSQL (issue 19): `store`'s statements over the same tables,
//! returning the same rows. Version writes lock the tenant's row first (docs/SCALE_OUT.md
//! §4.2), so two replicas patching one tenant take turns and never both write version n + 1.
use super::cache::Current;
use super::provider_keys::MaskedKey;
use super::store::{parse_body, HistoryEntry};
use super::Settings;
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::tenancy::TenantId;
use crate::time::Micros;
use serde_json::json;
use tokio_postgres::GenericClient;

fn damaged(tenant: TenantId) -> ApiError {
    ApiError::internal(format!("the settings of tenant {tenant} are damaged"))
}

/// Locks the tenant's row until the transaction ends: every replica's version write takes it
/// before reading the latest version. `NO KEY UPDATE` leaves foreign-key checks (usage rows
/// inserted for the tenant) unblocked. A tenant deleted meanwhile is 404.
pub async fn lock_tenant(c: &impl GenericClient, tenant: TenantId) -> Result<(), ApiError> {
    c.query_opt(
        "SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
        &[&tenant.as_uuid()],
    )
    .await?
    .map(|_| ())
    .ok_or_else(|| ApiError::NotFound("tenant not found".into()))
}

/// As `store::write_version`.
pub async fn write_version(
    c: &impl GenericClient,
    tenant: TenantId,
    version: i64,
    settings: &Settings,
    changed_by: &str,
    at: Micros,
) -> Result<Current, ApiError> {
    let body = serde_json::to_string(settings).map_err(ApiError::internal)?;
    c.execute(
        "INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[&tenant.as_uuid(), &version, &body, &changed_by, &at],
    )
    .await?;
    Ok(Current {
        version,
        settings: settings.clone(),
        changed_at: at,
    })
}

/// The tenant's newest version; `None` when it has none (a tenant deleted, or never made).
pub async fn latest_opt(
    c: &impl GenericClient,
    tenant: TenantId,
) -> Result<Option<Current>, ApiError> {
    let row = c
        .query_opt(
            "SELECT version, body, changed_at FROM settings_versions
             WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
            &[&tenant.as_uuid()],
        )
        .await?;
    row.map(|r| {
        Ok(Current {
            version: r.get(0),
            settings: parse_body(r.get(1)).map_err(|_| damaged(tenant))?,
            changed_at: r.get(2),
        })
    })
    .transpose()
}

/// As `store::latest`: defaults at version 0 for a tenant without a version.
pub async fn latest(c: &impl GenericClient, tenant: TenantId) -> Result<Current, ApiError> {
    Ok(latest_opt(c, tenant).await?.unwrap_or(Current {
        version: 0,
        settings: Settings::default(),
        changed_at: 0,
    }))
}

pub async fn version_body(
    c: &impl GenericClient,
    tenant: TenantId,
    version: i64,
) -> Result<Option<String>, ApiError> {
    Ok(c.query_opt(
        "SELECT body FROM settings_versions WHERE tenant_id = $1 AND version = $2",
        &[&tenant.as_uuid(), &version],
    )
    .await?
    .map(|r| r.get(0)))
}

/// As `store::history`: one page, newest first, each version with defaults filled in.
pub async fn history(
    c: &impl GenericClient,
    tenant: TenantId,
    page: &PageRequest<i64>,
) -> Result<Vec<HistoryEntry>, ApiError> {
    let rows = c
        .query(
            "SELECT version, body, changed_by, changed_at FROM settings_versions
             WHERE tenant_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
            &[
                &tenant.as_uuid(),
                &page.after.unwrap_or(i64::MAX),
                &page.fetch(),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let settings = parse_body(r.get(1)).map_err(|_| damaged(tenant))?;
            Ok(HistoryEntry {
                version: r.get(0),
                settings: json!(settings),
                changed_by: r.get(2),
                changed_at: r.get(3),
            })
        })
        .collect()
}

pub async fn masked_provider_keys(
    c: &impl GenericClient,
    tenant: TenantId,
) -> Result<Vec<MaskedKey>, ApiError> {
    let rows = c
        .query(
            "SELECT provider, masked, updated_at FROM provider_keys
             WHERE tenant_id = $1 ORDER BY provider",
            &[&tenant.as_uuid()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MaskedKey {
            provider: r.get(0),
            masked: r.get(1),
            updated_at: r.get(2),
        })
        .collect())
}

pub async fn put_provider_key(
    c: &impl GenericClient,
    tenant: TenantId,
    provider: &str,
    sealed: &[u8],
    masked: &str,
    now: Micros,
) -> Result<(), ApiError> {
    c.execute(
        "INSERT INTO provider_keys (tenant_id, provider, ciphertext, masked, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext,
             masked = excluded.masked, updated_at = excluded.updated_at",
        &[&tenant.as_uuid(), &provider, &sealed, &masked, &now],
    )
    .await?;
    Ok(())
}

/// False when the tenant had no key for `provider`.
pub async fn delete_provider_key(
    c: &impl GenericClient,
    tenant: TenantId,
    provider: &str,
) -> Result<bool, ApiError> {
    let n = c
        .execute(
            "DELETE FROM provider_keys WHERE tenant_id = $1 AND provider = $2",
            &[&tenant.as_uuid(), &provider],
        )
        .await?;
    Ok(n > 0)
}

pub async fn sealed_provider_key(
    c: &impl GenericClient,
    tenant: TenantId,
    provider: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    Ok(c.query_opt(
        "SELECT ciphertext FROM provider_keys WHERE tenant_id = $1 AND provider = $2",
        &[&tenant.as_uuid(), &provider],
    )
    .await?
    .map(|r| r.get(0)))
}
