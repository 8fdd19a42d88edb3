//! The rescue of expired leases, as River's `JobGetStuck` + `JobRescueMany`.
use super::report::{finish_status, outcome, record_dead, LEASE_EXPIRED};
use super::{apply_move, job, retrying, Fail, Move, COLUMNS, USAGE, USAGE_JOIN};
use crate::db::pg::Client;
use crate::error::ApiError;
use crate::queue::job::Status;
use crate::time::Micros;
use std::collections::BTreeMap;

/// Expired leases taken back per transaction.
pub const RESCUE_BATCH: i64 = 500;

/// Takes back up to `batch` expired leases in one transaction: each counts as a failed attempt
/// (`retrying` after the backoff, or `dead` with a `job.dead` event). Leases another replica is
/// taking back at the same moment are skipped, so replicas may run this together; the tenants'
/// rows are locked in `tenant_id` order. Returns how many it took back: a full batch means more
/// may wait.
pub async fn rescue(c: &mut Client, now: Micros, batch: i64) -> Result<usize, ApiError> {
    retrying!(rescue_once(c, now, batch))
}

async fn rescue_once(c: &mut Client, now: Micros, batch: i64) -> Result<usize, Fail> {
    let tx = c.transaction().await?;
    let st = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {USAGE} FROM jobs j {USAGE_JOIN}
             WHERE j.status = 'running' AND j.lease_expires_at <= $1
             ORDER BY j.lease_expires_at LIMIT $2 FOR UPDATE OF j SKIP LOCKED"
        ))
        .await?;
    let rows = tx.query(&st, &[&now, &batch]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (mut seqs, mut statuses, mut run_ats) = (Vec::new(), Vec::new(), Vec::new());
    let mut moves: BTreeMap<uuid::Uuid, Move> = BTreeMap::new();
    for r in &rows {
        let j = job(r)?;
        let (to, at) = outcome(&j, true, now);
        seqs.push(j.seq);
        statuses.push(to.as_str());
        run_ats.push(at);
        let t = uuid::Uuid::parse_str(&j.tenant_id).map_err(ApiError::internal)?;
        let m = moves.entry(t).or_default();
        m.step(Some(Status::Running), Some(to));
        match at {
            Some(at) => m.waiting(at),
            None => record_dead(&tx, &j, LEASE_EXPIRED, now).await?,
        }
    }
    let st = tx
        .prepare_cached(&format!(
            "UPDATE jobs j SET {}
             FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS v(seq, status, run_at)
             WHERE j.seq = v.seq",
            finish_status("v.status", "v.run_at", "$5", "NULL", "$1")
        ))
        .await?;
    tx.execute(&st, &[&now, &seqs, &statuses, &run_ats, &LEASE_EXPIRED])
        .await?;
    for (t, m) in &moves {
        apply_move(&tx, *t, m).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}
