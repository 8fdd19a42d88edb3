//! The CSV export of usage events: every matching event, oldest first, read in keyset chunks
//! (one short read per chunk on a pooled connection, never one long read transaction) and
//! encoded chunk by chunk, so memory stays flat whatever the count.
use super::reads::UsageFilter;
use super::service::Usage;
use crate::auth::Action;
use crate::db::Db;
use crate::error::ApiError;
use crate::tenancy::TenantCtx;
use crate::time::{write_rfc3339, Micros};
use crate::usage::money::Nanousd;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use std::sync::Arc;

/// Rows per read: large enough that a read's fixed cost (a pool checkout, a blocking-thread
/// hop) is noise, small enough that a chunk is a few hundred KiB and a read a few ms.
pub const CHUNK: usize = 2_000;

/// The columns, in order: the fields of `GET /api/usage/events`' items. Costs and prices are
/// exact decimal USD as in the JSON; `metadata` is its JSON text; an absent value is empty.
pub const COLUMNS: [&str; 26] = [
    "id",
    "tenant_id",
    "event_id",
    "timestamp",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated_cost_usd",
    "billed_cost_usd",
    "input_usd_per_million",
    "output_usd_per_million",
    "cache_read_usd_per_million",
    "cache_write_usd_per_million",
    "cost_source",
    "execution_mode",
    "pipeline_stage",
    "agent_name",
    "job_id",
    "user_id",
    "duration_ms",
    "metadata",
    "created_at",
];

/// One export under way: where the next chunk starts. Not a snapshot: an event recorded while
/// the export runs is included when it sorts after the chunks already sent.
pub struct Export {
    db: Db,
    tenant: String,
    filter: Arc<UsageFilter>,
    /// `(ts, seq)` of the last row sent; the next chunk starts after it.
    after: (Micros, i64),
    done: bool,
}

impl Usage {
    /// Starts an export of the tenant's events that match `f` (viewer). Refusals come here,
    /// before the answer's first byte.
    pub fn export(&self, ctx: &TenantCtx, f: UsageFilter) -> Result<Export, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        Ok(Export {
            db: self.db.clone(),
            tenant: ctx.db_id(),
            after: (f.from.unwrap_or(Micros::MIN), i64::MIN),
            filter: Arc::new(f),
            done: false,
        })
    }
}

impl Export {
    /// The header row.
    pub fn header() -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(COLUMNS)
            .expect("writing to memory cannot fail");
        w.into_inner().expect("writing to memory cannot fail")
    }

    /// The next chunk of CSV rows, or `None` once every matching event has been sent.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let (tenant, filter, after) = (self.tenant.clone(), self.filter.clone(), self.after);
        let (csv, rows, last) = match self.db.pg() {
            Some(pg) => {
                let c = pg.conn().await?;
                super::export_pg::chunk(&c, &tenant, &filter, after, CHUNK).await?
            }
            None => {
                self.db
                    .run(move |c| chunk(c, &tenant, &filter, after, CHUNK))
                    .await?
            }
        };
        self.done = rows < CHUNK;
        if let Some(last) = last {
            self.after = last;
        }
        Ok((rows > 0).then_some(csv))
    }
}

const SELECT: &str = "SELECT seq, ts, id, tenant_id, event_id, model, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, estimated_nanos, billed_nanos,
        input_price, output_price, cache_read_price, cache_write_price, cost_source,
        execution_mode, pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata,
        created_at
     FROM usage_events INDEXED BY usage_events_by_time
     WHERE tenant_id = ?1 AND (ts, seq) > (?2, ?3) AND ts < ?4
       AND (?5 IS NULL OR model = ?5) AND (?6 IS NULL OR pipeline_stage = ?6)
       AND (?7 IS NULL OR agent_name = ?7) AND (?8 IS NULL OR user_id = ?8)
       AND (?9 IS NULL OR job_id = ?9)
     ORDER BY ts, seq LIMIT ?10";

/// A chunk's CSV, how many rows it holds, and the last one's `(ts, seq)`.
pub(super) type Chunk = (Vec<u8>, usize, Option<(Micros, i64)>);

/// Up to `limit` rows after `after`, as CSV; with how many and the last one's sort key.
fn chunk(
    c: &Connection,
    tenant: &str,
    f: &UsageFilter,
    after: (Micros, i64),
    limit: usize,
) -> Result<Chunk, ApiError> {
    let mut stmt = c.prepare_cached(SELECT)?;
    let mut rows = stmt.query(params![
        tenant,
        after.0,
        after.1,
        f.to.unwrap_or(Micros::MAX),
        f.model,
        f.pipeline_stage,
        f.agent_name,
        f.user_id,
        f.job_id,
        limit as i64
    ])?;
    let mut w = csv::Writer::from_writer(Vec::with_capacity(limit * 256));
    let (mut n, mut last, mut scratch) = (0, None, Vec::with_capacity(64));
    while let Some(r) = rows.next()? {
        let (seq, ts): (i64, Micros) = (r.get(0)?, r.get(1)?);
        write_row(&mut w, r, ts, &mut scratch).map_err(ApiError::internal)?;
        n += 1;
        last = Some((ts, seq));
    }
    let csv = w.into_inner().map_err(ApiError::internal)?;
    Ok((csv, n, last))
}

/// A row failed to read or encode.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// Writes one row, field by field from SQLite's own buffers into the CSV writer: at a few
/// hundred thousand rows a second, an allocation per field is most of the cost.
fn write_row(
    w: &mut csv::Writer<Vec<u8>>,
    r: &rusqlite::Row,
    ts: Micros,
    scratch: &mut Vec<u8>,
) -> Result<(), RowError> {
    let mut ints = itoa::Buffer::new();
    let text = |w: &mut csv::Writer<Vec<u8>>, i: usize| -> Result<(), RowError> {
        match r.get_ref(i)? {
            ValueRef::Text(t) => w.write_field(t)?,
            _ => w.write_field(b"")?,
        }
        Ok(())
    };
    let (input, output): (i64, i64) = (r.get(6)?, r.get(7)?);
    text(w, 2)?;
    text(w, 3)?;
    text(w, 4)?;
    scratch.clear();
    write_rfc3339(ts, scratch);
    w.write_field(&scratch[..])?;
    text(w, 5)?;
    w.write_field(ints.format(input))?;
    w.write_field(ints.format(output))?;
    w.write_field(ints.format(input.saturating_add(output)))?;
    for i in 8..=10 {
        w.write_field(ints.format(r.get::<_, i64>(i)?))?;
    }
    for i in 11..=16 {
        scratch.clear();
        if let Some(v) = r.get::<_, Option<i64>>(i)? {
            Nanousd::from_nanos(v).write_decimal(scratch);
        }
        w.write_field(&scratch[..])?;
    }
    for i in 17..=22 {
        text(w, i)?;
    }
    match r.get::<_, Option<i64>>(23)? {
        Some(v) => w.write_field(ints.format(v))?,
        None => w.write_field(b"")?,
    }
    text(w, 24)?;
    scratch.clear();
    write_rfc3339(r.get(25)?, scratch);
    w.write_field(&scratch[..])?;
    w.write_record(None::<&[u8]>)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_every_column_once() {
        let h = String::from_utf8(Export::header()).unwrap();
        assert_eq!(h.trim_end().split(',').count(), COLUMNS.len());
        assert!(h.ends_with("created_at\n"));
    }

    #[test]
    fn the_export_reads_the_time_index_in_order() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {SELECT}"))
            .unwrap()
            .query_map(
                params![
                    "t",
                    0,
                    0,
                    1,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    10
                ],
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("usage_events_by_time")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }
}
