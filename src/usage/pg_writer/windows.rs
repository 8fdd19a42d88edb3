//! The windows a group's jobs are decided on: from this writer's memory while the tenant's
//! totals row still has the version it left, else from the rollups.
use super::super::counters::Windows;
use super::super::pg_store::{self, Locked, Statements};
use super::super::rollup::{day_of, month_span, Totals};
use super::super::writer::Job;
use super::Cache;
use crate::error::ApiError;
use crate::tenancy::TenantId;
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Transaction;
use uuid::Uuid;

pub(super) fn all_time(locked: &HashMap<Uuid, Locked>, tenant: TenantId) -> Totals {
    locked
        .get(&tenant.as_uuid())
        .map(|l| l.all_time)
        .unwrap_or_default()
}

/// The tenant's all-time totals so far in this group: every window of the tenant carries the
/// same one (kept in step by `set_all_time`).
pub(super) fn all_time_now(
    windows: &HashMap<(TenantId, i64), Windows>,
    locked: &HashMap<Uuid, Locked>,
    tenant: TenantId,
) -> Totals {
    windows
        .iter()
        .find(|((t, _), _)| *t == tenant)
        .map(|(_, w)| w.all_time)
        .unwrap_or_else(|| all_time(locked, tenant))
}

pub(super) fn set_all_time(
    windows: &mut HashMap<(TenantId, i64), Windows>,
    tenant: TenantId,
    t: Totals,
) {
    for ((_, _), w) in windows.iter_mut().filter(|((id, _), _)| *id == tenant) {
        w.all_time = t;
    }
}

/// Every (tenant, day) window the group needs: from this writer's cache when the tenant's row
/// still has the version it left, else from the rollups (one query per distinct day).
pub(super) async fn load_windows(
    tx: &Transaction<'_>,
    s: &Statements,
    jobs: &[Job],
    locked: &HashMap<Uuid, Locked>,
    cache: &Cache,
) -> Result<HashMap<(TenantId, i64), Windows>, ApiError> {
    let mut out = HashMap::new();
    let mut stale: BTreeMap<i64, Vec<Uuid>> = BTreeMap::new();
    for job in jobs {
        let day = day_of(job.now);
        if out.contains_key(&(job.tenant, day)) {
            continue;
        }
        let Some(l) = locked.get(&job.tenant.as_uuid()) else {
            return Err(ApiError::internal("a tenant's usage totals row is missing"));
        };
        match cache.get(&job.tenant) {
            Some((version, w)) if *version == l.version && w.day == day => {
                out.insert(
                    (job.tenant, day),
                    Windows {
                        all_time: l.all_time,
                        ..*w
                    },
                );
            }
            _ => {
                stale.entry(day).or_default().push(job.tenant.as_uuid());
                let (month, _) = month_span(day);
                out.insert(
                    (job.tenant, day),
                    Windows {
                        day,
                        month,
                        all_time: l.all_time,
                        ..Windows::default()
                    },
                );
            }
        }
    }
    for (day, tenants) in stale {
        let sums =
            pg_store::day_and_month(tx, &s.day_and_month, &tenants, day, month_span(day)).await?;
        for (tenant, (today, this_month)) in sums {
            if let Some(w) = out.get_mut(&(TenantId::from_uuid(tenant), day)) {
                w.today = today;
                w.this_month = this_month;
            }
        }
    }
    Ok(out)
}
