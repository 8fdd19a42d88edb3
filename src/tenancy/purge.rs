//! `TENANTRY_PURGE_INACTIVE_DAYS`: a tenant inactive for longer is deleted with everything it
//! owns. Its bulky tables go first in small batches (`db::sweep`), then its row, whose cascade
//! takes the rest, with a `tenant.purged` event on the default tenant in the same transaction.
use super::tenants::Tenancy;
use super::{store, store_pg, Tenant, DEFAULT_TENANT_ID};
use crate::db::pg::notify::{notify, Invalidation};
use crate::db::pg::Pg;
use crate::db::sweep::{self, Batches};
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::time::{rfc3339, Micros};
use serde_json::json;
use std::sync::Weak;
use std::time::Duration;

const DAY: Micros = 86_400_000_000;

/// As usage retention's batches: the rows are of the same tables.
pub const BATCHES: Batches = crate::usage::retention::BATCHES;

impl Tenancy {
    /// Deletes every tenant deactivated more than `days` days before `now` (none when `days`
    /// is 0), while `go_on()` holds; returns the tenants purged.
    pub fn purge_inactive(
        &self,
        now: Micros,
        days: u32,
        batches: Batches,
        go_on: &dyn Fn() -> bool,
    ) -> Result<Vec<Tenant>, ApiError> {
        if days == 0 {
            return Ok(Vec::new());
        }
        let cutoff = now.saturating_sub(i64::from(days) * DAY);
        let due = store::inactive_since_before(&*self.db.conn()?, cutoff)?;
        let mut purged = Vec::new();
        for t in due {
            for table in store::BULKY {
                batches.run(&self.db, go_on, |c, n| {
                    Ok(store::delete_rows_of_purgeable(c, table, t.id, cutoff, n)?)
                })?;
            }
            if !go_on() {
                break;
            }
            let gone = self.db.write_blocking(|c| {
                let tx = c.transaction()?;
                let n = store::delete_purgeable(&tx, t.id, cutoff)?;
                if n == 1 {
                    events::record(&tx, now, purged_event(&t, days))?;
                }
                tx.commit()?;
                if n == 1 {
                    self.forget(t.id);
                }
                Ok(n == 1)
            })?;
            if gone {
                purged.push(t);
            }
        }
        Ok(purged)
    }
}

impl Tenancy {
    /// As `purge_inactive`, on PostgreSQL through `pg` (the sweeper's own pool): the same
    /// batches, then the row in a transaction that records the event and tells the other
    /// replicas (`Invalidation::Tenant`), whose caches drop the tenant, its keys and settings.
    /// `usage_totals` and `queue_tenants` go with the row (ON DELETE CASCADE); the rate
    /// bucket, which has no foreign key, is deleted with it.
    pub async fn purge_inactive_pg(
        &self,
        pg: &Pg,
        now: Micros,
        days: u32,
        batches: Batches,
        go_on: &dyn Fn() -> bool,
    ) -> Result<Vec<Tenant>, ApiError> {
        if days == 0 {
            return Ok(Vec::new());
        }
        let cutoff = now.saturating_sub(i64::from(days) * DAY);
        let mut c = pg.conn().await?;
        let due = c
            .query(
                &format!(
                    "SELECT {} FROM tenants
                     WHERE status = 'inactive' AND deactivated_at < $1 AND id <> $2
                     ORDER BY deactivated_at, id",
                    store_pg::COLUMNS
                ),
                &[&cutoff, &DEFAULT_TENANT_ID.as_uuid()],
            )
            .await?
            .iter()
            .map(store_pg::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        let mut purged = Vec::new();
        for t in due {
            for table in store::BULKY {
                let sql = format!(
                    "DELETE FROM {table} WHERE seq IN
                       (SELECT seq FROM {table} WHERE tenant_id = $1
                          AND EXISTS (SELECT 1 FROM tenants WHERE id = $1
                                        AND status = 'inactive' AND deactivated_at < $2)
                        LIMIT $3)"
                );
                let delete = c.prepare(&sql).await?;
                let (c, delete, id) = (&c, &delete, t.id.as_uuid());
                batches
                    .run_pg(go_on, |n| async move {
                        Ok(c.execute(delete, &[&id, &cutoff, &n]).await?)
                    })
                    .await?;
            }
            if !go_on() {
                break;
            }
            let _w = self.db.pg_write_lock().await;
            let tx = c.transaction().await?;
            let id = t.id.as_uuid();
            // The usage writer's lock order: the totals row before the tenant's.
            tx.execute(
                "SELECT 1 FROM usage_totals WHERE tenant_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?;
            let n = tx
                .execute(
                    "DELETE FROM tenants
                     WHERE id = $1 AND status = 'inactive' AND deactivated_at < $2",
                    &[&id, &cutoff],
                )
                .await?;
            if n == 1 {
                tx.execute("DELETE FROM rate_buckets WHERE tenant_id = $1", &[&id])
                    .await?;
                crate::events::pg::record_many(&*tx, &[(now, purged_event(&t, days))]).await?;
                notify(&*tx, &Invalidation::Tenant(id)).await?;
            }
            tx.commit().await?;
            if n == 1 {
                self.forget(t.id);
                purged.push(t);
            }
        }
        Ok(purged)
    }
}

fn purged_event(t: &Tenant, days: u32) -> NewEvent {
    let data = json!({"tenant_id": t.id.to_string(), "slug": t.slug.as_str(), "name": t.name,
                      "plan": t.plan.as_str(), "deactivated_at": t.deactivated_at.map(rfc3339),
                      "purge_inactive_days": days, "actor": "retention"});
    let msg = format!(
        "tenant {} deleted after {days} days inactive (TENANTRY_PURGE_INACTIVE_DAYS)",
        t.slug
    );
    NewEvent::of(Kind::TenantPurged, DEFAULT_TENANT_ID, msg, data)
}

/// Starts the purge on PostgreSQL (unless `days` is 0), run only while this replica leads
/// (`sweep::every_pg`).
pub fn start_pg(
    tenancy: Tenancy,
    lead: Pg,
    url: &str,
    days: u32,
    every: Duration,
    alive: Weak<std::fs::File>,
) -> Result<(), String> {
    if days == 0 {
        return Ok(());
    }
    let clock = tenancy.clock();
    sweep::every_pg(
        "tenant-purge",
        clock,
        every,
        alive,
        lead,
        url,
        move |pg, now, go_on| {
            let tenancy = tenancy.clone();
            Box::pin(async move {
                match tenancy
                    .purge_inactive_pg(pg, now, days, BATCHES, go_on)
                    .await
                {
                    Ok(p) if p.is_empty() => {}
                    Ok(p) => tracing::warn!(purged = p.len(), days, "inactive tenants deleted"),
                    Err(e) => tracing::warn!(error = %e, "inactive tenant purge"),
                }
            })
        },
    )
}

/// Starts the purge (unless `days` is 0): at once, then every `every`, by the app's clock.
pub fn start(tenancy: Tenancy, days: u32, every: Duration, alive: Weak<std::fs::File>) {
    if days == 0 {
        return;
    }
    let clock = tenancy.clock();
    sweep::every(
        "tenant-purge",
        clock,
        every,
        alive,
        move |now, go_on| match tenancy.purge_inactive(now, days, BATCHES, go_on) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => tracing::warn!(purged = p.len(), days, "inactive tenants deleted"),
            Err(e) => tracing::warn!(error = %e, "inactive tenant purge"),
        },
    );
}
