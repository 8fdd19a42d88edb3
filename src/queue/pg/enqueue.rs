//! Enqueue (one job or a batch, one transaction, idempotency keys across replicas), cancel and
//! retry.
use super::{
    apply_move, job, job_id, not_found, retrying, Fail, Move, TenantInfo, COLUMNS, USAGE,
    USAGE_JOIN,
};
use crate::db::pg::Client;
use crate::error::ApiError;
use crate::queue::job::{created, Job, NewJob, Status};
use crate::queue::store::IDEMPOTENCY_WINDOW;
use crate::tenancy::TenantId;
use crate::time::Micros;
use std::collections::HashMap;

/// Stores `jobs` (checked by `NewJob::parse_body`) for `tenant` in one transaction and answers
/// each with `true` when created. A job whose idempotency key names a job of the tenant created
/// within the last 24 hours is that job (`false`), whichever replica stored it and even when
/// both enqueue at once: the unique index `jobs_by_idempotency_key` decides, and the loser of a
/// race reads the winner's row once it commits. A key older than the window is released from
/// its old job first, as on SQLite. `info` is the caller's view of the tenant, kept in its
/// `queue_tenants` row for leases.
pub async fn enqueue(
    c: &mut Client,
    tenant: TenantId,
    info: &TenantInfo,
    jobs: Vec<NewJob>,
    now: Micros,
) -> Result<Vec<(Job, bool)>, ApiError> {
    // Time-ordered ids (UUIDv7) as on SQLite; chosen once, so a retried transaction stores the
    // same ones.
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|_| uuid::Uuid::now_v7()).collect();
    retrying!(enqueue_once(c, tenant, info, &jobs, &ids, now))
}

async fn enqueue_once(
    c: &mut Client,
    tenant: TenantId,
    info: &TenantInfo,
    jobs: &[NewJob],
    ids: &[uuid::Uuid],
    now: Micros,
) -> Result<Vec<(Job, bool)>, Fail> {
    let t = tenant.as_uuid();
    let tx = c.transaction().await?;
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let keyed: Vec<&str> = keys.iter().flatten().copied().collect();
    if !keyed.is_empty() {
        let release = tx
            .prepare_cached(
                "UPDATE jobs SET idempotency_key = NULL
                 WHERE tenant_id = $1 AND idempotency_key = ANY($2) AND created_at <= $3",
            )
            .await?;
        tx.execute(&release, &[&t, &keyed, &(now - IDEMPOTENCY_WINDOW)])
            .await?;
    }
    let run_ats: Vec<Micros> = jobs.iter().map(|j| j.run_at.unwrap_or(now)).collect();
    let insert = tx
        .prepare_cached(
            "INSERT INTO jobs (id, tenant_id, queue, kind, payload, priority, status, attempts,
                               max_attempts, lease_seconds, run_at, idempotency_key, created_at,
                               updated_at)
             SELECT v.id, $1, v.queue, v.kind, v.payload, v.priority, 'queued', 0,
                    v.max_attempts, v.lease_seconds, v.run_at, v.key, $2, $2
             FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                         $8::bigint[], $9::bigint[], $10::bigint[], $11::text[])
                  WITH ORDINALITY
                  AS v(id, queue, kind, payload, priority, max_attempts, lease_seconds, run_at,
                       key, n)
             ORDER BY v.n
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING
             RETURNING id, seq",
        )
        .await?;
    let rows = tx
        .query(
            &insert,
            &[
                &t,
                &now,
                &ids,
                &jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>(),
                &jobs.iter().map(|j| j.kind.as_deref()).collect::<Vec<_>>(),
                &jobs.iter().map(|j| j.payload.get()).collect::<Vec<_>>(),
                &jobs.iter().map(|j| j.priority).collect::<Vec<_>>(),
                &jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>(),
                &jobs.iter().map(|j| j.lease_seconds).collect::<Vec<_>>(),
                &run_ats,
                &keys,
            ],
        )
        .await?;
    let seqs: HashMap<uuid::Uuid, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // The jobs that already held their keys: read after the insert, which waited for any
    // transaction inserting the same key to end, so a committed winner is visible here.
    let lost: Vec<&str> = jobs
        .iter()
        .zip(ids)
        .filter(|(_, id)| !seqs.contains_key(*id))
        .filter_map(|(j, _)| j.idempotency_key.as_deref())
        .collect();
    let mut existing: HashMap<String, Job> = HashMap::new();
    if !lost.is_empty() {
        let st = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, {USAGE} FROM jobs j {USAGE_JOIN}
                 WHERE j.tenant_id = $1 AND j.idempotency_key = ANY($2)"
            ))
            .await?;
        for r in tx.query(&st, &[&t, &lost]).await? {
            let j = job(&r)?;
            if let Some(k) = j.idempotency_key.clone() {
                existing.insert(k, j);
            }
        }
    }
    let mut out = Vec::with_capacity(jobs.len());
    let mut m = Move::default();
    for ((j, id), run_at) in jobs.iter().zip(ids).zip(&run_ats) {
        if let Some(seq) = seqs.get(id) {
            m.step(None, Some(Status::Queued));
            m.waiting(*run_at);
            let job = created(
                *seq,
                id.to_string(),
                tenant.to_string(),
                j.clone(),
                *run_at,
                now,
            );
            out.push((job, true));
            continue;
        }
        let key = j.idempotency_key.as_deref().unwrap_or_default();
        match existing.get(key) {
            Some(e) => out.push((e.clone(), false)),
            // The job that held the key lost it meanwhile (released by another enqueue past
            // the window): the transaction runs again and stores this one.
            None => return Err(Fail::Again("an idempotency key kept changing hands")),
        }
    }
    if m.waiting_at.is_some() {
        upsert_tenant(&tx, t, info, &m).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The tenant's row after an enqueue: made on its first job, else updated as `apply_move`
/// does, with the caller's view of the tenant.
async fn upsert_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: uuid::Uuid,
    info: &TenantInfo,
    m: &Move,
) -> Result<(), Fail> {
    let st = tx
        .prepare_cached(
            "INSERT INTO queue_tenants AS q (tenant_id, weight, max_running, active, turn,
                                             next_run_at, queued)
             VALUES ($1, $2, $3, $4, nextval('queue_turns'), $5, $6)
             ON CONFLICT (tenant_id) DO UPDATE SET
                 weight = EXCLUDED.weight, max_running = EXCLUDED.max_running,
                 active = EXCLUDED.active, queued = q.queued + EXCLUDED.queued,
                 next_run_at = CASE WHEN q.queued + q.retrying = 0 THEN EXCLUDED.next_run_at
                                    ELSE least(q.next_run_at, EXCLUDED.next_run_at) END,
                 turn = CASE WHEN q.queued + q.retrying = 0 THEN EXCLUDED.turn ELSE q.turn END,
                 taken = CASE WHEN q.queued + q.retrying = 0 THEN 0 ELSE q.taken END",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &tenant,
            &info.weight(),
            &info.max_running,
            &info.active,
            &m.waiting_at,
            &m.delta[0],
        ],
    )
    .await?;
    Ok(())
}

/// `queued` or `retrying` to `cancelled`; 409 from any other status, 404 for no such job.
pub async fn cancel(
    c: &mut Client,
    tenant: TenantId,
    id: &str,
    now: Micros,
) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    let from = &[Status::Queued, Status::Retrying];
    retrying!(transition(c, tenant, id, from, Status::Cancelled, now))
}

/// `dead` or `cancelled` back to `queued`, to run now with its attempts reset.
pub async fn retry(
    c: &mut Client,
    tenant: TenantId,
    id: &str,
    now: Micros,
) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    let from = &[Status::Dead, Status::Cancelled];
    retrying!(transition(c, tenant, id, from, Status::Queued, now))
}

async fn transition(
    c: &mut Client,
    tenant: TenantId,
    id: uuid::Uuid,
    from: &[Status],
    to: Status,
    now: Micros,
) -> Result<Job, Fail> {
    let t = tenant.as_uuid();
    let tx = c.transaction().await?;
    let read = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {USAGE} FROM jobs j {USAGE_JOIN}
             WHERE j.id = $1 AND j.tenant_id = $2 FOR UPDATE OF j"
        ))
        .await?;
    let row = tx
        .query_opt(&read, &[&id, &t])
        .await?
        .ok_or_else(not_found)?;
    let mut j = job(&row)?;
    if !from.contains(&j.status) {
        let names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let verb = if to == Status::Cancelled {
            "cancelled"
        } else {
            "retried"
        };
        return Err(Fail::Api(ApiError::Conflict(format!(
            "the job is {}; only a job that is {} can be {verb}",
            j.status.as_str(),
            names.join(" or "),
        ))));
    }
    let queued = to == Status::Queued;
    let update = tx
        .prepare_cached(
            "UPDATE jobs SET status = $2, run_at = coalesce($3, run_at),
                             attempts = CASE WHEN $4 THEN 0 ELSE attempts END, updated_at = $5
             WHERE seq = $1",
        )
        .await?;
    let run_at = queued.then_some(now);
    tx.execute(&update, &[&j.seq, &to.as_str(), &run_at, &queued, &now])
        .await?;
    let mut m = Move::default();
    m.step(Some(j.status), Some(to));
    if queued {
        m.waiting(now);
        j.run_at = now;
        j.attempts = 0;
    }
    apply_move(&tx, t, &m).await?;
    tx.commit().await?;
    j.status = to;
    j.updated_at = now;
    Ok(j)
}
