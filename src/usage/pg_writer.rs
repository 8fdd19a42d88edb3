//! The usage writer on PostgreSQL (issue 19; docs/SCALE_OUT.md §3). The same `Writer` handle
//! and group commit as SQLite's: requests hand it priced events and wait; one thread takes
//! every request waiting into one transaction and answers each after the commit. What changes
//! is where the truth lives. Several replicas write one database, so this writer's memory
//! cannot be it: each group first locks its tenants' `usage_totals` rows (sorted: no
//! deadlocks), and the bound, the limit windows and the crossings are computed on what every
//! replica committed. The windows a replica keeps are reused only while the row's `version`
//! says no other writer touched the tenant since.
use super::counters::Windows;
use super::crossings;
use super::pg_store::{self, Locked, NewRow, RollupKey, Statements};
use super::priced::CostSource;
use super::rollup::{day_of, month_span, Totals};
use super::store::FirstRecorded;
use super::writer::{gather, in_closed_period, ClosedBefore, Job, Outcome, Recorded, Writer};
use crate::db::pg::describe;
use crate::error::ApiError;
use crate::events::NewEvent;
use crate::limits;
use crate::tenancy::TenantId;
use crate::time::Micros;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

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
                        ApiError::internal(format!("postgres: cannot connect: {}", describe(&e)))
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
    let cause = detail(e);
    tracing::error!(%cause, tenant_id = %tenant, "usage commit failed");
    ApiError::internal(format!("usage commit failed: {cause}"))
}

/// What a group's transaction decided before its COMMIT.
struct Staged {
    out: Vec<Result<Outcome, ApiError>>,
    windows: Cache,
}

async fn commit(
    conn: &mut Conn,
    jobs: &[Job],
    cache: &mut Cache,
    closed: &ClosedBefore,
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    let batch = Uuid::new_v4();
    let (client, statements) = conn.get().await?;
    let tx = client.transaction().await?;
    let staged = stage(&tx, statements, jobs, cache, closed, batch).await?;
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
            if conn.lost() && pg_store::committed(&*conn.get().await?.0, batch).await? {
                tracing::warn!(%batch, "usage commit's answer was lost; its receipt says it committed");
                return Ok(staged.out);
            }
            Err(e.into())
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
    let locked = pg_store::lock_totals(tx, s, &tenants).await?;
    let closed_before = closed();
    let mut windows = load_windows(tx, s, jobs, &locked, cache).await?;

    // Which jobs go into the one group insert: those that cannot take a total past an i64 even
    // if every event were new. The others (never seen outside tests) run alone, in a savepoint.
    let mut refused: Vec<Option<ApiError>> = jobs
        .iter()
        .map(|j| closed_before.and_then(|b| in_closed_period(j, b)))
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

fn all_time(locked: &HashMap<Uuid, Locked>, tenant: TenantId) -> Totals {
    locked
        .get(&tenant.as_uuid())
        .map(|l| l.all_time)
        .unwrap_or_default()
}

/// The tenant's all-time totals so far in this group: every window of the tenant carries the
/// same one (kept in step by `set_all_time`).
fn all_time_now(
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

fn set_all_time(windows: &mut HashMap<(TenantId, i64), Windows>, tenant: TenantId, t: Totals) {
    for ((_, _), w) in windows.iter_mut().filter(|((id, _), _)| *id == tenant) {
        w.all_time = t;
    }
}

/// Every (tenant, day) window the group needs: from this writer's cache when the tenant's row
/// still has the version it left, else from the rollups (one query per distinct day).
async fn load_windows(
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

fn event_ids(job: &Job) -> Result<Vec<Uuid>, ApiError> {
    job.events
        .iter()
        .map(|p| Uuid::parse_str(&p.id).map_err(ApiError::internal))
        .collect()
}

fn new_rows<'a>(job: &'a Job, ids: &'a [Uuid]) -> impl Iterator<Item = NewRow<'a>> + 'a {
    let mode = job.settings.settings.execution_mode.as_str();
    let markup = job.settings.settings.markup_percent.units();
    job.events.iter().zip(ids).map(move |(p, id)| NewRow {
        tenant: job.tenant.as_uuid(),
        id: *id,
        priced: p,
        mode,
        markup,
    })
}

/// The first recorded events of the rows that were not inserted (their `event_id` was taken).
async fn duplicates_of(
    tx: &Transaction<'_>,
    s: &Statements,
    rows: &[NewRow<'_>],
    inserted: &HashSet<Uuid>,
) -> Result<HashMap<(Uuid, String), FirstRecorded>, ApiError> {
    let keys: Vec<(Uuid, &str)> = rows
        .iter()
        .filter(|r| !inserted.contains(&r.id))
        .filter_map(|r| Some((r.tenant, r.priced.event.event_id.as_deref()?)))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(pg_store::first_recorded(tx, s, &keys).await?)
}

/// A job's outcome from what the insert did, its duplicates' indexes and the events it causes;
/// adds its new events to `w` (refusing the job if all time cannot hold them).
fn decide(
    job: &Job,
    ids: &[Uuid],
    inserted: &HashSet<Uuid>,
    first: &HashMap<(Uuid, String), FirstRecorded>,
    w: &mut Windows,
) -> Result<(Outcome, Vec<usize>, Vec<NewEvent>), ApiError> {
    let mut out = Outcome {
        accepted: 0,
        duplicates: 0,
        events: Vec::with_capacity(job.events.len()),
        limits: limits::evaluate(
            &job.settings.settings,
            &Totals::default(),
            &Totals::default(),
        ),
        added: Totals::default(),
    };
    let mut dups = Vec::new();
    let mut events = Vec::new();
    let tenant = job.tenant.as_uuid();
    for (i, (p, id)) in job.events.iter().zip(ids).enumerate() {
        let e = &p.event;
        if !inserted.contains(id) {
            let recorded = e
                .event_id
                .as_ref()
                .and_then(|k| first.get(&(tenant, k.clone())))
                .ok_or_else(|| ApiError::internal("an event was neither stored nor a duplicate"))?;
            out.duplicates += 1;
            dups.push(i);
            out.events.push(Recorded {
                id: recorded.id.clone(),
                event_id: e.event_id.clone(),
                estimated: recorded.estimated,
                billed: recorded.billed,
                duplicate: true,
            });
            continue;
        }
        out.accepted += 1;
        let t = p.totals();
        if !w.add(p.day, &t) {
            return Err(ApiError::InvalidRequest(format!(
                "events[{i}] would take the tenant's usage totals past what can be recorded \
                 (about 9.2 billion USD or 9.2 × 10^18 tokens); nothing of this request was stored"
            )));
        }
        out.added.add(&t);
        if p.source == CostSource::UnknownModel {
            events.push(crossings::unknown_model(job, e.model.as_str()));
        }
        out.events.push(Recorded {
            id: p.id.clone(),
            event_id: e.event_id.clone(),
            estimated: p.estimated,
            billed: p.billed,
            duplicate: false,
        });
    }
    out.limits = limits::evaluate(&job.settings.settings, &w.today, &w.this_month);
    events.extend(crossings::crossings(job, w, &out.limits));
    Ok((out, dups, events))
}

/// The job's rollup deltas, its duplicates taken out again (as the SQLite writer does).
fn add_rollups(rollups: &mut BTreeMap<RollupKey, Totals>, job: &Job, dups: &[usize]) {
    let tenant = job.tenant.as_uuid();
    for ((day, dim), keys) in &job.rollups {
        for (key, t) in keys {
            rollups
                .entry((tenant, dim, *day, key.clone()))
                .or_default()
                .add(t);
        }
    }
    for p in dups.iter().map(|&i| &job.events[i]) {
        for (day, dim, key) in p.rollup_rows() {
            if let Some(t) = rollups.get_mut(&(tenant, dim, day, key.to_string())) {
                t.sub(&p.totals());
            }
        }
    }
}
