//! All of usage's SQL: recording events idempotently, the daily rollup rows, the events list,
//! price overrides and agent preferences. Functions take a connection and typed rows; this is
//! the seam where a second database would plug in (docs/SCALE_OUT.md).
use super::money::Nanousd;
use super::priced::Priced;
use super::pricing::Price;
use super::reads::UsageFilter;
use super::rollup::Totals;
use crate::pagination::PageRequest;
use crate::time::Micros;
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};
use serde_json::Value;

/// The one statement that records a usage event; public so the benchmark's raw-SQLite baseline
/// measures exactly what the writer runs.
pub const INSERT_EVENT: &str =
    "INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
         estimated_nanos, billed_nanos, input_price, output_price, cost_source, execution_mode,
         markup, pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, created_at,
         cache_read_tokens, cache_write_tokens, reasoning_tokens, cache_read_price,
         cache_write_price)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)
     ON CONFLICT (tenant_id, event_id) WHERE event_id IS NOT NULL DO NOTHING";

/// What an insert found: a new event, or the one already recorded under its `event_id`.
pub enum Inserted {
    New,
    Duplicate(FirstRecorded),
}

#[derive(Clone)]
pub struct FirstRecorded {
    pub id: String,
    pub estimated: Nanousd,
    pub billed: Nanousd,
}

/// The writer's two statements for one job, prepared once and run per event.
pub struct EventWriter<'c> {
    insert: CachedStatement<'c>,
    existing: CachedStatement<'c>,
}

impl<'c> EventWriter<'c> {
    pub fn new(c: &'c Connection) -> rusqlite::Result<EventWriter<'c>> {
        Ok(EventWriter {
            insert: c.prepare_cached(INSERT_EVENT)?,
            existing: c.prepare_cached(
                "SELECT id, estimated_nanos, billed_nanos FROM usage_events
                 WHERE tenant_id = ?1 AND event_id = ?2",
            )?,
        })
    }

    /// Records `p` for `tenant` with the settings it was priced under, unless its `event_id`
    /// is already recorded.
    pub fn insert(
        &mut self,
        tenant: &str,
        p: &Priced,
        mode: &str,
        markup: i64,
        now: Micros,
    ) -> rusqlite::Result<Inserted> {
        let e = &p.event;
        let n = self.insert.execute(params![
            p.id,
            tenant,
            e.event_id,
            e.ts,
            e.model,
            e.input_tokens as i64,
            e.output_tokens as i64,
            p.estimated.nanos(),
            p.billed.nanos(),
            p.price.map(|x| x.input_per_million.nanos()),
            p.price.map(|x| x.output_per_million.nanos()),
            p.source.as_str(),
            mode,
            markup,
            e.pipeline_stage,
            e.agent_name,
            e.job_id,
            e.user_id,
            e.duration_ms.map(|d| d as i64),
            e.metadata,
            now,
            e.cache_read_tokens as i64,
            e.cache_write_tokens as i64,
            e.reasoning_tokens as i64,
            p.price.map(|x| x.cache_read().nanos()),
            p.price.map(|x| x.cache_write().nanos())
        ])?;
        if n == 1 {
            return Ok(Inserted::New);
        }
        self.existing.query_row(params![tenant, e.event_id], |r| {
            Ok(Inserted::Duplicate(FirstRecorded {
                id: r.get(0)?,
                estimated: Nanousd::from_nanos(r.get(1)?),
                billed: Nanousd::from_nanos(r.get(2)?),
            }))
        })
    }
}

/// A request that may be refused after some of its rows are written runs inside this
/// savepoint, so refusing it takes back exactly its rows.
pub fn savepoint(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("SAVEPOINT job")
}

pub fn roll_back_savepoint(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("ROLLBACK TO job; RELEASE job")
}

pub fn release_savepoint(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("RELEASE job")
}

/// Adds `t` to one rollup row; called for every dimension of every accepted event's group.
pub fn add_to_rollup(
    c: &Connection,
    tenant: &str,
    day: i64,
    dim: &str,
    key: &str,
    t: &Totals,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens, output_tokens,
                                    estimated_nanos, billed_nanos, cache_read_tokens,
                                    cache_write_tokens, reasoning_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (tenant_id, dim, day, key) DO UPDATE SET
             events = events + excluded.events,
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             estimated_nanos = estimated_nanos + excluded.estimated_nanos,
             billed_nanos = billed_nanos + excluded.billed_nanos,
             cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
             reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens",
    )?
    .execute(params![
        tenant,
        day,
        dim,
        key,
        t.events,
        t.input_tokens,
        t.output_tokens,
        t.estimated.nanos(),
        t.billed.nanos(),
        t.cache_read_tokens,
        t.cache_write_tokens,
        t.reasoning_tokens
    ])?;
    Ok(())
}

fn totals_row(r: &rusqlite::Row, from: usize) -> rusqlite::Result<Totals> {
    Ok(Totals {
        events: r.get::<_, Option<i64>>(from)?.unwrap_or(0),
        input_tokens: r.get::<_, Option<i64>>(from + 1)?.unwrap_or(0),
        output_tokens: r.get::<_, Option<i64>>(from + 2)?.unwrap_or(0),
        estimated: Nanousd::from_nanos(r.get::<_, Option<i64>>(from + 3)?.unwrap_or(0)),
        billed: Nanousd::from_nanos(r.get::<_, Option<i64>>(from + 4)?.unwrap_or(0)),
        cache_read_tokens: r.get::<_, Option<i64>>(from + 5)?.unwrap_or(0),
        cache_write_tokens: r.get::<_, Option<i64>>(from + 6)?.unwrap_or(0),
        reasoning_tokens: r.get::<_, Option<i64>>(from + 7)?.unwrap_or(0),
    })
}

/// The total over days `[from, to)`.
pub fn total(c: &Connection, tenant: &str, from: i64, to: i64) -> rusqlite::Result<Totals> {
    c.prepare_cached(
        "SELECT sum(events), sum(input_tokens), sum(output_tokens), sum(estimated_nanos),
                sum(billed_nanos), sum(cache_read_tokens), sum(cache_write_tokens),
                sum(reasoning_tokens)
         FROM usage_rollups WHERE tenant_id = ?1 AND dim = '' AND day >= ?2 AND day < ?3",
    )?
    .query_row(params![tenant, from, to], |r| totals_row(r, 0))
}

/// Per-key sums of one dimension over days `[from, to)`; `dim = ""` with `by_day` gives days.
pub fn groups(
    c: &Connection,
    tenant: &str,
    dim: &str,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(String, Totals)>> {
    let sql = if dim.is_empty() {
        "SELECT CAST(day AS TEXT), sum(events), sum(input_tokens), sum(output_tokens),
                sum(estimated_nanos), sum(billed_nanos), sum(cache_read_tokens),
                sum(cache_write_tokens), sum(reasoning_tokens)
         FROM usage_rollups WHERE tenant_id = ?1 AND dim = ?2 AND day >= ?3 AND day < ?4
         GROUP BY day ORDER BY day"
    } else {
        "SELECT key, sum(events), sum(input_tokens), sum(output_tokens),
                sum(estimated_nanos), sum(billed_nanos), sum(cache_read_tokens),
                sum(cache_write_tokens), sum(reasoning_tokens)
         FROM usage_rollups WHERE tenant_id = ?1 AND dim = ?2 AND day >= ?3 AND day < ?4
         GROUP BY key ORDER BY sum(estimated_nanos) DESC, key"
    };
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![tenant, dim, from, to], |r| {
        Ok((r.get::<_, String>(0)?, totals_row(r, 1)?))
    })?;
    rows.collect()
}

/// A usage event as recorded. `metadata` is the client's free JSON object.
pub struct StoredEvent {
    pub id: String,
    pub tenant_id: String,
    pub event_id: Option<String>,
    pub ts: Micros,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: Nanousd,
    pub billed: Nanousd,
    /// The prices charged, when the cost came from the table.
    pub input_price: Option<Nanousd>,
    pub output_price: Option<Nanousd>,
    pub cache_read_price: Option<Nanousd>,
    pub cache_write_price: Option<Nanousd>,
    pub cost_source: String,
    pub execution_mode: String,
    pub pipeline_stage: Option<String>,
    pub agent_name: Option<String>,
    pub job_id: Option<String>,
    pub user_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub metadata: Option<Value>,
    pub created_at: Micros,
}

/// One page of a tenant's events, newest first, each with its `(ts, seq)` sort key.
pub fn list_events(
    c: &Connection,
    tenant: &str,
    f: &UsageFilter,
    page: &PageRequest<(Micros, i64)>,
) -> rusqlite::Result<Vec<((Micros, i64), StoredEvent)>> {
    let (before_ts, before_seq) = page.after.unwrap_or((i64::MAX, i64::MAX));
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
                estimated_nanos, billed_nanos, input_price, output_price, cost_source,
                execution_mode, markup, pipeline_stage, agent_name, job_id, user_id,
                duration_ms, metadata, created_at, cache_read_tokens, cache_write_tokens,
                reasoning_tokens, cache_read_price, cache_write_price
         FROM usage_events INDEXED BY usage_events_by_time
         WHERE tenant_id = ?1 AND (ts, seq) < (?2, ?3)
           AND (?4 IS NULL OR ts >= ?4) AND (?5 IS NULL OR ts < ?5)
           AND (?6 IS NULL OR model = ?6) AND (?7 IS NULL OR pipeline_stage = ?7)
           AND (?8 IS NULL OR agent_name = ?8) AND (?9 IS NULL OR user_id = ?9)
           AND (?10 IS NULL OR job_id = ?10)
         ORDER BY ts DESC, seq DESC LIMIT ?11",
    )?;
    let rows = stmt.query_map(
        params![
            tenant,
            before_ts,
            before_seq,
            f.from,
            f.to,
            f.model,
            f.pipeline_stage,
            f.agent_name,
            f.user_id,
            f.job_id,
            page.fetch()
        ],
        |r| {
            let money = |i: usize| -> rusqlite::Result<Option<Nanousd>> {
                Ok(r.get::<_, Option<i64>>(i)?.map(Nanousd::from_nanos))
            };
            let metadata: Option<String> = r.get(20)?;
            let e = StoredEvent {
                id: r.get(1)?,
                tenant_id: r.get(2)?,
                event_id: r.get(3)?,
                ts: r.get(4)?,
                model: r.get(5)?,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                cache_read_tokens: r.get(22)?,
                cache_write_tokens: r.get(23)?,
                reasoning_tokens: r.get(24)?,
                estimated: Nanousd::from_nanos(r.get(8)?),
                billed: Nanousd::from_nanos(r.get(9)?),
                input_price: money(10)?,
                output_price: money(11)?,
                cache_read_price: money(25)?,
                cache_write_price: money(26)?,
                cost_source: r.get(12)?,
                execution_mode: r.get(13)?,
                pipeline_stage: r.get(15)?,
                agent_name: r.get(16)?,
                job_id: r.get(17)?,
                user_id: r.get(18)?,
                duration_ms: r.get(19)?,
                metadata: metadata.and_then(|m| serde_json::from_str::<Value>(&m).ok()),
                created_at: r.get(21)?,
            };
            Ok(((e.ts, r.get::<_, i64>(0)?), e))
        },
    )?;
    rows.collect()
}

/// Deletes up to `batch` of the tenant's events timestamped before `cutoff`, oldest first;
/// returns how many. `usage_events_by_time` finds them without reading the rest.
pub fn delete_events_before(
    c: &Connection,
    tenant: &str,
    cutoff: Micros,
    batch: usize,
) -> rusqlite::Result<usize> {
    c.prepare_cached(DELETE_EVENTS_BEFORE)?
        .execute(params![tenant, cutoff, batch as i64])
}

pub(super) const DELETE_EVENTS_BEFORE: &str = "DELETE FROM usage_events WHERE seq IN
    (SELECT seq FROM usage_events INDEXED BY usage_events_by_time
     WHERE tenant_id = ?1 AND ts < ?2 ORDER BY ts LIMIT ?3)";

/// Every tenant's id (retention goes through them one at a time).
pub fn tenant_ids(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT id FROM tenants ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

pub fn agent_preferences(
    c: &Connection,
    tenant: &str,
    agent: &str,
) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT body FROM agent_preferences WHERE tenant_id = ?1 AND agent_name = ?2",
        params![tenant, agent],
        |r| r.get(0),
    )
    .optional()
}

pub fn set_agent_preferences(
    c: &Connection,
    tenant: &str,
    agent: &str,
    body: &str,
    now: Micros,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO agent_preferences (tenant_id, agent_name, body, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, agent_name) DO UPDATE SET body = excluded.body,
             updated_at = excluded.updated_at",
        params![tenant, agent, body, now],
    )?;
    Ok(())
}

/// The operator's prices, which the built-in ones give way to.
pub fn price_overrides(c: &Connection) -> rusqlite::Result<Vec<(String, Price)>> {
    let mut stmt = c.prepare(
        "SELECT model, input_usd_per_million_nanos, output_usd_per_million_nanos,
                cache_read_usd_per_million_nanos, cache_write_usd_per_million_nanos
         FROM pricing_overrides",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Price {
                input_per_million: Nanousd::from_nanos(r.get(1)?),
                output_per_million: Nanousd::from_nanos(r.get(2)?),
                cache_read_per_million: r.get::<_, Option<i64>>(3)?.map(Nanousd::from_nanos),
                cache_write_per_million: r.get::<_, Option<i64>>(4)?.map(Nanousd::from_nanos),
            },
        ))
    })?;
    rows.collect()
}

pub fn set_price_override(
    c: &Connection,
    model: &str,
    price: Price,
    at: Micros,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO pricing_overrides (model, input_usd_per_million_nanos,
             output_usd_per_million_nanos, cache_read_usd_per_million_nanos,
             cache_write_usd_per_million_nanos, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (model) DO UPDATE SET
             input_usd_per_million_nanos = excluded.input_usd_per_million_nanos,
             output_usd_per_million_nanos = excluded.output_usd_per_million_nanos,
             cache_read_usd_per_million_nanos = excluded.cache_read_usd_per_million_nanos,
             cache_write_usd_per_million_nanos = excluded.cache_write_usd_per_million_nanos,
             updated_at = excluded.updated_at",
        params![
            model,
            price.input_per_million.nanos(),
            price.output_per_million.nanos(),
            price.cache_read_per_million.map(Nanousd::nanos),
            price.cache_write_per_million.map(Nanousd::nanos),
            at
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The insert runs once per event, so its plan must not build a temporary B-tree per row
    /// (what `CHECK (x IN ('a', 'b', 'c'))` did before migration 0004, at half the insert's cost).
    #[test]
    fn the_event_insert_opens_no_ephemeral_table() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        let mut plan = c.prepare(&format!("EXPLAIN {INSERT_EVENT}")).unwrap();
        let unbound = std::iter::repeat_n(rusqlite::types::Null, plan.parameter_count());
        let ops: Vec<String> = plan
            .query_map(rusqlite::params_from_iter(unbound), |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(ops.iter().any(|op| op == "Insert"), "{ops:?}");
        assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{ops:?}");
    }
}
