//! Usage's SQL on PostgreSQL (issue 19): what the PostgreSQL writer runs in its group
//! transaction, each step one statement over arrays (`unnest`) whatever the group's size, so a
//! group costs the same few round trips for one event or twenty thousand. docs/SCALE_OUT.md §3.
use super::money::Nanousd;
use super::priced::Priced;
use super::rollup::Totals;
use super::store::FirstRecorded;
use crate::time::Micros;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::{GenericClient, Row};

mod statements;
pub use statements::{day_and_month_sql, Statements, INSERT_EVENTS};
use uuid::Uuid;

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// The columns every totals read returns, in `totals_at`'s order.
pub(crate) const SUMS: &str =
    "events, input_tokens, output_tokens, estimated_nanos, billed_nanos, \
                    cache_read_tokens, cache_write_tokens, reasoning_tokens";

pub(super) fn totals_at(r: &Row, from: usize) -> Totals {
    let get = |i: usize| r.get::<_, Option<i64>>(from + i).unwrap_or(0);
    Totals {
        events: get(0),
        input_tokens: get(1),
        output_tokens: get(2),
        estimated: Nanousd::from_nanos(get(3)),
        billed: Nanousd::from_nanos(get(4)),
        cache_read_tokens: get(5),
        cache_write_tokens: get(6),
        reasoning_tokens: get(7),
    }
}

/// A tenant's all-time totals row, locked for the rest of the transaction.
pub struct Locked {
    pub version: i64,
    pub all_time: Totals,
}

/// Locks the totals rows of `tenants` (sorted, so two writers always lock in the same order and
/// never deadlock), creating the missing ones as zeros. Every writer on every replica takes
/// these locks first: while held, nobody else adds usage for those tenants.
pub async fn lock_totals(
    c: &impl GenericClient,
    s: &Statements,
    tenants: &[Uuid],
) -> PgResult<HashMap<Uuid, Locked>> {
    // Sent together (one round trip): the insert runs first, then the locking read.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenants];
    let (_, rows) = tokio::try_join!(
        c.execute(&s.insert_totals, &params),
        c.query(&s.lock_totals, &params)
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Locked {
                    version: r.get(1),
                    all_time: totals_at(r, 2),
                },
            )
        })
        .collect())
}

/// With billing on: for each of `tenants` with a stored statement, the first day after the
/// newest one's month. Sent with `lock_totals` (after it, so it reads what committed before the
/// locks were held): a statement another replica stored closes its period here too, whatever
/// this replica's clock says.
pub async fn closed_through(
    c: &impl GenericClient,
    s: &Statements,
    tenants: &[Uuid],
    billing: bool,
) -> PgResult<HashMap<Uuid, i64>> {
    if !billing {
        return Ok(HashMap::new());
    }
    let rows = c.query(&s.closed_through, &[&tenants]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Each tenant's totals for `day` and for the month `[first, next)` holding it, from the
/// rollups' total rows (at most 31 rows a tenant).
pub async fn day_and_month<T>(
    c: &impl GenericClient,
    statement: &T,
    tenants: &[Uuid],
    day: i64,
    (first, next): (i64, i64),
) -> PgResult<HashMap<Uuid, (Totals, Totals)>>
where
    T: ?Sized + tokio_postgres::ToStatement + Sync + Send,
{
    let rows = c.query(statement, &[&tenants, &day, &first, &next]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (totals_at(r, 1), totals_at(r, 9))))
        .collect())
}

/// One event to insert, with what it is recorded under.
pub struct NewRow<'a> {
    pub tenant: Uuid,
    pub id: Uuid,
    pub priced: &'a Priced,
    pub mode: &'static str,
    pub markup: i64,
}

/// Inserts `rows` in one statement, in order; an `event_id` the tenant already has (or that
/// comes earlier in `rows`) is skipped. Returns the ids inserted: the others are duplicates.
pub async fn insert_events<T>(
    c: &impl GenericClient,
    statement: &T,
    rows: &[NewRow<'_>],
    now: Micros,
) -> PgResult<HashSet<Uuid>>
where
    T: ?Sized + tokio_postgres::ToStatement + Sync + Send,
{
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut event_ids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut ts = Vec::with_capacity(n);
    let mut models = Vec::with_capacity(n);
    let mut ints: [Vec<i64>; 7] = Default::default();
    let mut prices: [Vec<Option<i64>>; 4] = Default::default();
    let mut sources = Vec::with_capacity(n);
    let mut modes = Vec::with_capacity(n);
    let mut markups = Vec::with_capacity(n);
    let mut labels: [Vec<Option<&str>>; 5] = Default::default();
    let mut durations = Vec::with_capacity(n);
    for r in rows {
        let (p, e) = (r.priced, &r.priced.event);
        ids.push(r.id);
        tenants.push(r.tenant);
        event_ids.push(e.event_id.as_deref());
        ts.push(e.ts);
        models.push(e.model.as_str());
        for (v, x) in ints.iter_mut().zip([
            e.input_tokens as i64,
            e.output_tokens as i64,
            p.estimated.nanos(),
            p.billed.nanos(),
            e.cache_read_tokens as i64,
            e.cache_write_tokens as i64,
            e.reasoning_tokens as i64,
        ]) {
            v.push(x);
        }
        for (v, x) in prices.iter_mut().zip([
            p.price.map(|x| x.input_per_million.nanos()),
            p.price.map(|x| x.output_per_million.nanos()),
            p.price.map(|x| x.cache_read().nanos()),
            p.price.map(|x| x.cache_write().nanos()),
        ]) {
            v.push(x);
        }
        sources.push(p.source.as_str());
        modes.push(r.mode);
        markups.push(r.markup);
        for (v, x) in labels.iter_mut().zip([
            e.pipeline_stage.as_deref(),
            e.agent_name.as_deref(),
            e.job_id.as_deref(),
            e.user_id.as_deref(),
            e.metadata.as_deref(),
        ]) {
            v.push(x);
        }
        durations.push(e.duration_ms.map(|d| d as i64));
    }
    let [input, output, estimated, billed, cache_read, cache_write, reasoning] = &ints;
    let [input_price, output_price, cache_read_price, cache_write_price] = &prices;
    let [stage, agent, job, user, metadata] = &labels;
    let inserted = c
        .query(
            statement,
            &[
                &ids,
                &tenants,
                &event_ids,
                &ts,
                &models,
                input,
                output,
                estimated,
                billed,
                input_price,
                output_price,
                &sources,
                &modes,
                &markups,
                stage,
                agent,
                job,
                user,
                &durations,
                metadata,
                cache_read,
                cache_write,
                reasoning,
                cache_read_price,
                cache_write_price,
                &now,
            ],
        )
        .await?;
    Ok(inserted.iter().map(|r| r.get(0)).collect())
}

/// The events already recorded under these `(tenant, event_id)` pairs.
pub async fn first_recorded(
    c: &impl GenericClient,
    s: &Statements,
    keys: &[(Uuid, &str)],
) -> PgResult<HashMap<(Uuid, String), FirstRecorded>> {
    let tenants: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let event_ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let rows = c.query(&s.first_recorded, &[&tenants, &event_ids]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                FirstRecorded {
                    id: r.get::<_, Uuid>(2).to_string(),
                    estimated: Nanousd::from_nanos(r.get(3)),
                    billed: Nanousd::from_nanos(r.get(4)),
                },
            )
        })
        .collect())
}

/// A rollup row's key: tenant, dimension, day, value (the primary key's order).
pub type RollupKey = (Uuid, &'static str, i64, String);

/// Column-wise arrays of `Totals`, in `SUMS` order.
fn columns<'a>(totals: impl Iterator<Item = &'a Totals>) -> [Vec<i64>; 8] {
    let mut out: [Vec<i64>; 8] = Default::default();
    for t in totals {
        for (v, x) in out.iter_mut().zip([
            t.events,
            t.input_tokens,
            t.output_tokens,
            t.estimated.nanos(),
            t.billed.nanos(),
            t.cache_read_tokens,
            t.cache_write_tokens,
            t.reasoning_tokens,
        ]) {
            v.push(x);
        }
    }
    out
}

/// Adds each delta to its rollup row in one statement, in key order (no row twice: the map's
/// keys are unique, which `DO UPDATE` needs).
pub async fn add_to_rollups(
    c: &impl GenericClient,
    s: &Statements,
    deltas: &BTreeMap<RollupKey, Totals>,
) -> PgResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let tenants: Vec<Uuid> = deltas.keys().map(|k| k.0).collect();
    let dims: Vec<&str> = deltas.keys().map(|k| k.1).collect();
    let days: Vec<i64> = deltas.keys().map(|k| k.2).collect();
    let keys: Vec<&str> = deltas.keys().map(|k| k.3.as_str()).collect();
    let [events, input, output, estimated, billed, cache_read, cache_write, reasoning] =
        columns(deltas.values());
    c.execute(
        &s.add_rollups,
        &[
            &tenants,
            &dims,
            &days,
            &keys,
            &events,
            &input,
            &output,
            &estimated,
            &billed,
            &cache_read,
            &cache_write,
            &reasoning,
        ],
    )
    .await?;
    Ok(())
}

/// Adds each tenant's delta to its (locked) totals row and moves its version on.
pub async fn add_to_totals(
    c: &impl GenericClient,
    s: &Statements,
    deltas: &BTreeMap<Uuid, Totals>,
) -> PgResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let tenants: Vec<Uuid> = deltas.keys().copied().collect();
    let [events, input, output, estimated, billed, cache_read, cache_write, reasoning] =
        columns(deltas.values());
    c.execute(
        &s.add_totals,
        &[
            &tenants,
            &events,
            &input,
            &output,
            &estimated,
            &billed,
            &cache_read,
            &cache_write,
            &reasoning,
        ],
    )
    .await?;
    Ok(())
}

/// Records the group `batch` in its own transaction: found after a COMMIT whose answer was lost
/// with the connection, it says the group was stored (and must not be stored again).
pub async fn record_commit(
    c: &impl GenericClient,
    s: &Statements,
    batch: Uuid,
    now: Micros,
) -> PgResult<()> {
    c.execute(&s.record_commit, &[&batch, &now]).await?;
    Ok(())
}

/// Whether the group `batch` committed: asked after the connection was lost during COMMIT.
pub async fn committed(c: &impl GenericClient, batch: Uuid) -> PgResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM writer_commits WHERE batch_id = $1",
        &[&batch],
    )
    .await?
    .is_some())
}
