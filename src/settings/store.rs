//! Versioned settings: every change writes a new version row with who made it, in the same
//! transaction as its event; rollback writes a new version whose content is the old one.
use super::cache::Current;
use super::Settings;
use crate::auth::Action;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::time::Micros;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn parse_body(body: &str) -> rusqlite::Result<Settings> {
    serde_json::from_str(body).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Writes version `version` of a tenant's settings. Used by tenant creation (version 1) too.
pub fn write_version(
    c: &Connection,
    tenant: Uuid,
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

fn latest(c: &Connection, tenant: Uuid) -> Result<Current, ApiError> {
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
fn changed_fields(old: &Settings, new: &Settings) -> Vec<String> {
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

impl AppState {
    /// Writes a new version from the current one, records its event, and updates the cache.
    async fn new_version(
        &self,
        ctx: &TenantCtx,
        make: impl FnOnce(&Connection, &Current) -> Result<(Settings, Kind, Value), ApiError>
            + Send
            + 'static,
    ) -> Result<Current, ApiError> {
        ctx.require(Action::Manage)?;
        // Who made the change, for history and events: `admin`, or the key (and its user).
        let (tenant, by) = (ctx.id(), ctx.caller().describe());
        self.write(move |st, c| {
            let tx = c.transaction()?;
            let current = latest(&tx, tenant)?;
            let (settings, kind, mut data) = make(&tx, &current)?;
            let now = st.now();
            let next = write_version(&tx, tenant, current.version + 1, &settings, &by, now)?;
            data["version"] = json!(next.version);
            data["changed_fields"] = json!(changed_fields(&current.settings, &settings));
            data["actor"] = json!(by);
            let message = format!("settings version {} by {by}", next.version);
            events::record(&tx, now, NewEvent::of(kind, tenant, message, data))?;
            tx.commit()?;
            st.settings.put(tenant, next.clone());
            Ok(next)
        })
        .await
    }

    pub async fn patch_settings(&self, ctx: &TenantCtx, patch: Value) -> Result<Current, ApiError> {
        // Validate before taking the write lock, against the cached version; the write re-applies
        // the patch to the version it reads, so a concurrent change is not lost.
        self.settings.get(ctx.id()).settings.patched(&patch)?;
        self.new_version(ctx, move |_, current| {
            Ok((
                current.settings.patched(&patch)?,
                Kind::SettingsChanged,
                json!({}),
            ))
        })
        .await
    }

    pub async fn rollback_settings(
        &self,
        ctx: &TenantCtx,
        version: i64,
    ) -> Result<Current, ApiError> {
        let tenant = ctx.id();
        self.new_version(ctx, move |c, _| {
            let body: String = c
                .query_row(
                    "SELECT body FROM settings_versions WHERE tenant_id = ?1 AND version = ?2",
                    params![tenant.to_string(), version],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| ApiError::NotFound(format!("no settings version {version}")))?;
            Ok((
                parse_body(&body)?,
                Kind::SettingsRolledBack,
                json!({"rolled_back_to": version}),
            ))
        })
        .await
    }

    pub async fn settings_history(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<i64>,
    ) -> Result<Page<HistoryEntry>, ApiError> {
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT version, body, changed_by, changed_at FROM settings_versions
                     WHERE tenant_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3",
                )?;
                let rows = stmt
                    .query_map(
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
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page.limit, |h| h.version))
            })
            .await
    }
}
