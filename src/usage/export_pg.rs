//! The CSV export's chunks on PostgreSQL: the same keyset `(ts, seq)` through
//! `usage_events_by_time`, one short query per chunk on a pooled connection (never one result
//! for the whole export), encoded into the same bytes as SQLite's (`export::write_row`).
use super::export::Chunk;
use super::money::Nanousd;
use super::reads::UsageFilter;
use crate::error::ApiError;
use crate::time::{write_rfc3339, Micros};
use tokio_postgres::Row;

/// `export::SELECT` on PostgreSQL: ids as their text (hyphenated, lower case, as SQLite keeps
/// them), the other columns as they are.
const SELECT: &str = "SELECT seq, ts, id::text, tenant_id::text, event_id, model, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, estimated_nanos,
        billed_nanos, input_price, output_price, cache_read_price, cache_write_price,
        cost_source, execution_mode, pipeline_stage, agent_name, job_id, user_id, duration_ms,
        metadata, created_at
     FROM usage_events
     WHERE tenant_id = $1::text::uuid AND (ts, seq) > ($2, $3) AND ts < $4
       AND ($5::text IS NULL OR model = $5) AND ($6::text IS NULL OR pipeline_stage = $6)
       AND ($7::text IS NULL OR agent_name = $7) AND ($8::text IS NULL OR user_id = $8)
       AND ($9::text IS NULL OR job_id = $9)
     ORDER BY ts, seq LIMIT $10";

/// Up to `limit` rows after `after`, as CSV; with how many and the last one's sort key.
pub async fn chunk(
    c: &crate::db::pg::Client,
    tenant: &str,
    f: &UsageFilter,
    after: (Micros, i64),
    limit: usize,
) -> Result<Chunk, ApiError> {
    let stmt = c.prepare_cached(SELECT).await?;
    let rows = c
        .query(
            &stmt,
            &[
                &tenant,
                &after.0,
                &after.1,
                &f.to.unwrap_or(Micros::MAX),
                &f.model,
                &f.pipeline_stage,
                &f.agent_name,
                &f.user_id,
                &f.job_id,
                &(limit as i64),
            ],
        )
        .await?;
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
    let (mut last, mut scratch) = (None, Vec::with_capacity(64));
    for r in &rows {
        let (seq, ts): (i64, Micros) = (r.get(0), r.get(1));
        write_row(&mut w, r, ts, &mut scratch).map_err(ApiError::internal)?;
        last = Some((ts, seq));
    }
    let csv = w.into_inner().map_err(ApiError::internal)?;
    Ok((csv, rows.len(), last))
}

/// `export::write_row` over a PostgreSQL row of `SELECT`: the same fields in the same form.
fn write_row(
    w: &mut csv::Writer<Vec<u8>>,
    r: &Row,
    ts: Micros,
    scratch: &mut Vec<u8>,
) -> Result<(), csv::Error> {
    let mut ints = itoa::Buffer::new();
    let text = |w: &mut csv::Writer<Vec<u8>>, i: usize| {
        w.write_field(r.get::<_, Option<&str>>(i).unwrap_or_default())
    };
    let (input, output): (i64, i64) = (r.get(6), r.get(7));
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
        w.write_field(ints.format(r.get::<_, i64>(i)))?;
    }
    for i in 11..=16 {
        scratch.clear();
        if let Some(v) = r.get::<_, Option<i64>>(i) {
            Nanousd::from_nanos(v).write_decimal(scratch);
        }
        w.write_field(&scratch[..])?;
    }
    for i in 17..=22 {
        text(w, i)?;
    }
    match r.get::<_, Option<i64>>(23) {
        Some(v) => w.write_field(ints.format(v))?,
        None => w.write_field(b"")?,
    }
    text(w, 24)?;
    scratch.clear();
    write_rfc3339(r.get(25), scratch);
    w.write_field(&scratch[..])?;
    w.write_record(None::<&[u8]>)
}
