//! The usage writer on PostgreSQL (issue 19; docs/SCALE_OUT.md §3). The same `Writer` handle
//! and group commit as SQLite's: requests hand it priced events and wait; one thread takes
//! every request waiting into one transaction and answers each after the commit. What changes
//! is where the truth lives. Several replicas write one database, so this writer's memory
//! cannot be it: each group first locks its tenants' `usage_totals` rows (sorted: no
//! deadlocks), and the bound, the limit windows and the crossings are computed on what every
//! replica committed. The windows a replica keeps are reused only while the row's `version`
//! says no other writer touched the tenant since.
mod decide;
mod windows;

use super::counters::Windows;
use super::pg_store::{self, RollupKey, Statements};
use super::rollup::{day_of, Totals, DAY_MICROS};
use super::writer::{gather, in_closed_period, ClosedBefore, Job, Outcome, Writer};
use crate::db::pg::describe;
use crate::error::ApiError;
use crate::events::NewEvent;
use crate::tenancy::TenantId;
use crate::time::Micros;
use decide::{add_rollups, decide, duplicates_of, event_ids, new_rows};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;
use windows::{all_time, all_time_now, load_windows, set_all_time};

/// A tenant's windows as of its totals row's version.
type Cache = HashMap<TenantId, (i64, Windows)>;

/// The writer's own connection (not pooled), opened again after it is lost.
struct Conn {
    config: tokio_postgres::Config,
    client: Option<(Client, Statements)>,
}

impl Conn {
    /// The connection and its prepared statements, connecting (and preparing) if need be.
    async fn get(&mut self) -> Result<(&mut Client, &Statements), ApiError> {
        if self.lost() {
            self.client = None;
            let (client, connection) =
                self.config
                    .connect(crate::db::pg::tls())
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %describe(&e), "the usage writer cannot connect");
                        ApiError::NotReady
                    })?;
            // Driven by the writer's runtime whenever it runs a commit.
            tokio::spawn(connection);
            let statements = Statements::prepare(&client).await?;
            self.client = Some((client, statements));
        }
        let (client, statements) = self.client.as_mut().expect("connected above");
        Ok((client, statements))
    }

    fn lost(&self) -> bool {
        self.client.as_ref().is_none_or(|(c, _)| c.is_closed())
    }
}

/// Starts the writer thread for the database at `url`: it connects at its first group (and
/// again whenever the connection is lost), so a database briefly down fails requests, not the
/// server.
pub fn start(url: &str, closed: ClosedBefore) -> Result<Writer, String> {
    start_with(crate::db::pg::parse_url(url)?, closed)
}

/// As `start`, with parsed connection settings.
pub fn start_with(config: tokio_postgres::Config, closed: ClosedBefore) -> Result<Writer, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the usage writer's runtime: {e}"))?;
    let (writer, rx) = Writer::from_channel();
    std::thread::Builder::new()
        .name("usage-writer-pg".into())
        .spawn(move || {
            let mut conn = Conn {
                config,
                client: None,
            };
            let mut cache = Cache::new();
            let mut flushes = Vec::new();
            while let Ok(first) = rx.recv() {
                let jobs = gather(first, &rx, &mut flushes);
                if !jobs.is_empty() {
                    runtime.block_on(commit_group(&mut conn, jobs, &mut cache, &closed));
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        })
        .map_err(|e| format!("cannot start the usage writer: {e}"))?;
    Ok(writer)
}

/// Commits the group; should that fail, each job is tried alone so only its own request fails.
async fn commit_group(conn: &mut Conn, jobs: Vec<Job>, cache: &mut Cache, closed: &ClosedBefore) {
    let results = match commit(conn, &jobs, cache, closed).await {
        Ok(results) => results,
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(cause = %detail(&e), jobs = jobs.len(), "group commit failed; retrying each request alone");
            let mut results = Vec::with_capacity(jobs.len());
            for job in &jobs {
                results.push(
                    match commit(conn, std::slice::from_ref(job), cache, closed).await {
                        Ok(mut one) => one
                            .pop()
                            .unwrap_or_else(|| Err(ApiError::internal("no outcome"))),
                        Err(e) => Err(failed(&e, job.tenant)),
                    },
                );
            }
            results
        }
        Err(e) => vec![Err(failed(&e, jobs[0].tenant))],
    };
    for (job, r) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(r);
    }
}

fn detail(e: &ApiError) -> String {
    match e {
        ApiError::Internal(d) => d.clone(),
        other => other.to_string(),
    }
}

fn failed(e: &ApiError, tenant: TenantId) -> ApiError {
    if matches!(e, ApiError::NotReady) {
        return ApiError::NotReady;
    }
    let cause = detail(e);
    tracing::error!(%cause, tenant_id = %tenant, "usage commit failed");
    ApiError::internal(format!("usage commit failed: {cause}"))
}

/// What a group's transaction decided before its COMMIT.
struct Staged {
    out: Vec<Result<Outcome, ApiError>>,
    windows: Cache,
}

/// Commits the group on the writer's connection. A connection found dead before the COMMIT
/// was sent (PostgreSQL restarted or failed over since the last group) stored nothing, so the
/// group runs once more on a fresh one instead of failing its requests.
async fn commit(
    conn: &mut Conn,
    jobs: &[Job],
    cache: &mut Cache,
    closed: &ClosedBefore,
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    match commit_once(conn, jobs, cache, closed).await {
        Err(Attempt::BeforeCommit(e)) if conn.lost() => {
            tracing::warn!(cause = %detail(&e), "the usage writer's connection was lost; reconnecting");
            commit_once(conn, jobs, cache, closed)
                .await
                .map_err(Attempt::into_error)
        }
        r => r.map_err(Attempt::into_error),
    }
}

/// Where a group's attempt failed: before its COMMIT was sent (nothing stored), or at it.
enum Attempt {
    BeforeCommit(ApiError),
    AtCommit(ApiError),
}

impl Attempt {
    fn into_error(self) -> ApiError {
        match self {
            Attempt::BeforeCommit(e) | Attempt::AtCommit(e) => e,
        }
    }
}

async fn commit_once(
    conn: &mut Conn,
    jobs: &[Job],
    cache: &mut Cache,
    closed: &ClosedBefore,
) -> Result<Vec<Result<Outcome, ApiError>>, Attempt> {
    let batch = Uuid::new_v4();
    let before = Attempt::BeforeCommit;
    let (client, statements) = conn.get().await.map_err(before)?;
    let tx = client.transaction().await.map_err(|e| before(e.into()))?;
    let staged = stage(&tx, statements, jobs, cache, closed, batch)
        .await
        .map_err(before)?;
    match tx.commit().await {
        Ok(()) => {
            cache.extend(staged.windows);
            Ok(staged.out)
        }
        Err(e) => {
            for tenant in staged.windows.keys() {
                cache.remove(tenant);
            }
            // The connection died with the COMMIT in flight: it may have committed. A fresh
            // connection finds the group's receipt, or not; retrying blindly could store events
            // without an `event_id` twice.
            let at = Attempt::AtCommit;
            if conn.lost()
                && pg_store::committed(&*conn.get().await.map_err(at)?.0, batch)
                    .await
                    .map_err(|e| at(e.into()))?
            {
                tracing::warn!(%batch, "usage commit's answer was lost; its receipt says it committed");
                return Ok(staged.out);
            }
            Err(at(e.into()))
        }
    }
}

/// Everything of a group but its COMMIT: lock, insert, decide each job, add up.
async fn stage(
    tx: &Transaction<'_>,
    s: &Statements,
    jobs: &[Job],
    cache: &Cache,
    closed: &ClosedBefore,
    batch: Uuid,
) -> Result<Staged, ApiError> {
    let mut tenants: Vec<Uuid> = jobs.iter().map(|j| j.tenant.as_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    // With billing on, the newest statements stored, read after the locks (sent together):
    // finalizing takes the same lock, so a period is closed here once any replica stored it.
    let billing = closed().is_some();
    let (locked, stored) = tokio::try_join!(
        pg_store::lock_totals(tx, s, &tenants),
        pg_store::closed_through(tx, s, &tenants, billing)
    )?;
    let closed_before = closed();
    let mut windows = load_windows(tx, s, jobs, &locked, cache).await?;

    // Which jobs go into the one group insert: those that cannot take a total past an i64 even
    // if every event were new. The others (never seen outside tests) run alone, in a savepoint.
    let mut refused: Vec<Option<ApiError>> = jobs
        .iter()
        .map(|j| {
            let through = stored.get(&j.tenant.as_uuid()).map(|d| d * DAY_MICROS);
            let b = closed_before.map(|b| through.map_or(b, |t| b.max(t)))?;
            in_closed_period(j, b)
        })
        .collect();
    let mut bound: HashMap<TenantId, Totals> = HashMap::new();
    let mut risky = vec![false; jobs.len()];
    let mut rows = Vec::new();
    let ids = jobs.iter().map(event_ids).collect::<Result<Vec<_>, _>>()?;
    for (i, job) in jobs.iter().enumerate() {
        if refused[i].is_none() {
            let ub = bound
                .entry(job.tenant)
                .or_insert_with(|| all_time(&locked, job.tenant));
            match ub.checked_add(&job.bound) {
                Some(sum) => {
                    *ub = sum;
                    rows.extend(new_rows(job, &ids[i]));
                }
                None => risky[i] = true,
            }
        }
    }
    let mut inserted = pg_store::insert_events(tx, &s.insert_events, &rows, jobs[0].now).await?;
    let mut first = duplicates_of(tx, s, &rows, &inserted).await?;

    let mut out = Vec::with_capacity(jobs.len());
    let mut rollups: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    let mut deltas: BTreeMap<Uuid, Totals> = BTreeMap::new();
    let mut events: Vec<(Micros, NewEvent)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(e) = refused[i].take() {
            out.push(Err(e));
            continue;
        }
        let key = (job.tenant, day_of(job.now));
        let before = windows[&key];
        let mut w = before;
        w.all_time = all_time_now(&windows, &locked, job.tenant);
        if risky[i] {
            tx.batch_execute("SAVEPOINT job").await?;
            let rows = new_rows(job, &ids[i]).collect::<Vec<_>>();
            inserted.extend(pg_store::insert_events(tx, &s.insert_events, &rows, job.now).await?);
            first.extend(duplicates_of(tx, s, &rows, &inserted).await?);
        }
        match decide(job, &ids[i], &inserted, &first, &mut w) {
            Ok((outcome, dups, new_events)) => {
                if risky[i] {
                    tx.batch_execute("RELEASE job").await?;
                }
                add_rollups(&mut rollups, job, &dups);
                deltas
                    .entry(job.tenant.as_uuid())
                    .or_default()
                    .add(&outcome.added);
                events.extend(new_events.into_iter().map(|e| (job.now, e)));
                set_all_time(&mut windows, job.tenant, w.all_time);
                windows.insert(key, w);
                out.push(Ok(outcome));
            }
            Err(e @ ApiError::InvalidRequest(_)) if risky[i] => {
                tx.batch_execute("ROLLBACK TO job; RELEASE job").await?;
                out.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    rollups.retain(|_, t| t.events != 0);
    deltas.retain(|_, t| t.events != 0);
    // Independent statements of one transaction, sent together: one round trip for the four.
    let record = async {
        match events.is_empty() {
            true => Ok(0),
            false => crate::events::pg::record_many_with(tx, &s.record_events, &events).await,
        }
    };
    tokio::try_join!(
        record,
        pg_store::add_to_rollups(tx, s, &rollups),
        pg_store::add_to_totals(tx, s, &deltas),
        pg_store::record_commit(tx, s, batch, jobs[0].now),
    )?;
    // The versions this commit leaves: moved on for the tenants it added to.
    let mut kept = Cache::new();
    for ((tenant, _), w) in windows {
        let Some(l) = locked.get(&tenant.as_uuid()) else {
            continue;
        };
        let moved = deltas.contains_key(&tenant.as_uuid());
        let version = l.version + i64::from(moved);
        if kept.get(&tenant).is_none_or(|(_, k)| k.day <= w.day) {
            kept.insert(tenant, (version, w));
        }
    }
    Ok(Staged { out, windows: kept })
}
