//! Usage's reads and small writes on PostgreSQL (issue 19): the rollup reads behind limits,
//! stats and the summary, the events list, agent preferences and the operator's prices. The
//! writer's SQL is in `pg_store`.
use super::money::Nanousd;
use super::pg_store::{totals_at, SUMS};
use super::pricing::Price;
use super::reads::UsageFilter;
use super::rollup::Totals;
use super::store::StoredEvent;
use crate::pagination::PageRequest;
use crate::time::Micros;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// The total over days `[from, to)` (what the limits and the summary read).
pub async fn total(c: &impl GenericClient, tenant: Uuid, from: i64, to: i64) -> PgResult<Totals> {
    let sums = SUMS
        .split(", ")
        .map(|col| format!("sum({col})::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = c
        .query_one(
            &format!(
                "SELECT {sums} FROM usage_rollups
                 WHERE tenant_id = $1 AND dim = '' AND day >= $2 AND day < $3"
            ),
            &[&tenant, &from, &to],
        )
        .await?;
    Ok(totals_at(&row, 0))
}

/// Per-key sums of one dimension over days `[from, to)`, as SQLite's `store::groups` orders
/// them; `dim = ""` gives days (as text, as there).
pub async fn groups(
    c: &impl GenericClient,
    tenant: Uuid,
    dim: &str,
    from: i64,
    to: i64,
) -> PgResult<Vec<(String, Totals)>> {
    let sums = SUMS
        .split(", ")
        .map(|col| format!("sum({col})::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let (key, order) = if dim.is_empty() {
        ("day::text", "GROUP BY day ORDER BY day")
    } else {
        (
            "key",
            "GROUP BY key ORDER BY sum(estimated_nanos) DESC, key",
        )
    };
    let rows = c
        .query(
            &format!(
                "SELECT {key}, {sums} FROM usage_rollups
                 WHERE tenant_id = $1 AND dim = $2 AND day >= $3 AND day < $4 {order}"
            ),
            &[&tenant, &dim, &from, &to],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), totals_at(r, 1))).collect())
}

/// One page of a tenant's events, newest first, each with its `(ts, seq)` sort key (as
/// SQLite's `store::list_events`; `usage_events_by_time` serves it).
pub async fn list_events(
    c: &impl GenericClient,
    tenant: Uuid,
    f: &UsageFilter,
    page: &PageRequest<(Micros, i64)>,
) -> PgResult<Vec<((Micros, i64), StoredEvent)>> {
    let (before_ts, before_seq) = page.after.unwrap_or((i64::MAX, i64::MAX));
    let rows = c
        .query(
            "SELECT seq, id::text, tenant_id::text, event_id, ts, model, input_tokens,
                    output_tokens, estimated_nanos, billed_nanos, input_price, output_price,
                    cost_source, execution_mode, markup, pipeline_stage, agent_name, job_id,
                    user_id, duration_ms, metadata, created_at, cache_read_tokens,
                    cache_write_tokens, reasoning_tokens, cache_read_price, cache_write_price
             FROM usage_events
             WHERE tenant_id = $1 AND (ts, seq) < ($2, $3)
               AND ($4::int8 IS NULL OR ts >= $4) AND ($5::int8 IS NULL OR ts < $5)
               AND ($6::text IS NULL OR model = $6) AND ($7::text IS NULL OR pipeline_stage = $7)
               AND ($8::text IS NULL OR agent_name = $8) AND ($9::text IS NULL OR user_id = $9)
               AND ($10::text IS NULL OR job_id = $10)
             ORDER BY ts DESC, seq DESC LIMIT $11",
            &[
                &tenant,
                &before_ts,
                &before_seq,
                &f.from,
                &f.to,
                &f.model,
                &f.pipeline_stage,
                &f.agent_name,
                &f.user_id,
                &f.job_id,
                &page.fetch(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let money = |i: usize| r.get::<_, Option<i64>>(i).map(Nanousd::from_nanos);
            let metadata: Option<String> = r.get(20);
            let e = StoredEvent {
                id: r.get(1),
                tenant_id: r.get(2),
                event_id: r.get(3),
                ts: r.get(4),
                model: r.get(5),
                input_tokens: r.get(6),
                output_tokens: r.get(7),
                cache_read_tokens: r.get(22),
                cache_write_tokens: r.get(23),
                reasoning_tokens: r.get(24),
                estimated: Nanousd::from_nanos(r.get(8)),
                billed: Nanousd::from_nanos(r.get(9)),
                input_price: money(10),
                output_price: money(11),
                cache_read_price: money(25),
                cache_write_price: money(26),
                cost_source: r.get(12),
                execution_mode: r.get(13),
                pipeline_stage: r.get(15),
                agent_name: r.get(16),
                job_id: r.get(17),
                user_id: r.get(18),
                duration_ms: r.get(19),
                metadata: metadata.and_then(|m| serde_json::from_str::<Value>(&m).ok()),
                created_at: r.get(21),
            };
            ((e.ts, r.get::<_, i64>(0)), e)
        })
        .collect())
}

pub async fn agent_preferences(
    c: &impl GenericClient,
    tenant: Uuid,
    agent: &str,
) -> PgResult<Option<String>> {
    Ok(c.query_opt(
        "SELECT body FROM agent_preferences WHERE tenant_id = $1 AND agent_name = $2",
        &[&tenant, &agent],
    )
    .await?
    .map(|r| r.get(0)))
}

pub async fn set_agent_preferences(
    c: &impl GenericClient,
    tenant: Uuid,
    agent: &str,
    body: &str,
    now: Micros,
) -> PgResult<()> {
    c.execute(
        "INSERT INTO agent_preferences (tenant_id, agent_name, body, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, agent_name) DO UPDATE SET body = excluded.body,
             updated_at = excluded.updated_at",
        &[&tenant, &agent, &body, &now],
    )
    .await?;
    Ok(())
}

/// Stores the operator's price for `model`.
pub async fn set_price_override(
    c: &impl GenericClient,
    model: &str,
    price: Price,
    at: Micros,
) -> PgResult<()> {
    c.execute(
        "INSERT INTO pricing_overrides (model, input_usd_per_million_nanos,
             output_usd_per_million_nanos, cache_read_usd_per_million_nanos,
             cache_write_usd_per_million_nanos, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (model) DO UPDATE SET
             input_usd_per_million_nanos = excluded.input_usd_per_million_nanos,
             output_usd_per_million_nanos = excluded.output_usd_per_million_nanos,
             cache_read_usd_per_million_nanos = excluded.cache_read_usd_per_million_nanos,
             cache_write_usd_per_million_nanos = excluded.cache_write_usd_per_million_nanos,
             updated_at = excluded.updated_at",
        &[
            &model,
            &price.input_per_million.nanos(),
            &price.output_per_million.nanos(),
            &price.cache_read_per_million.map(Nanousd::nanos),
            &price.cache_write_per_million.map(Nanousd::nanos),
            &at,
        ],
    )
    .await?;
    Ok(())
}
