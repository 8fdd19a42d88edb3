//! The writer's statements: their SQL, prepared once per connection.
use super::{PgResult, SUMS};
use tokio_postgres::{GenericClient, Statement};

/// The writer's statements, prepared once per connection: a statement sent as text is parsed
/// and planned on every call, a round trip of its own before the one that runs it.
pub struct Statements {
    pub(super) insert_totals: Statement,
    pub(super) lock_totals: Statement,
    pub day_and_month: Statement,
    pub insert_events: Statement,
    pub(super) first_recorded: Statement,
    pub(super) add_rollups: Statement,
    pub(super) add_totals: Statement,
    pub(super) record_commit: Statement,
    pub(super) closed_through: Statement,
    /// `events::pg::RECORD_MANY`, for the unknown-model and limit-crossing events.
    pub record_events: Statement,
}

impl Statements {
    pub async fn prepare(c: &impl GenericClient) -> PgResult<Statements> {
        let add = |to: &str, from: &str| {
            SUMS.split(", ")
                .map(|col| format!("{col} = {to}.{col} + {from}.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(Statements {
            insert_totals: c
                .prepare(
                    "INSERT INTO usage_totals (tenant_id)
                     SELECT t FROM unnest($1::uuid[]) WITH ORDINALITY AS u(t, n) ORDER BY n
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .await?,
            lock_totals: c
                .prepare(&format!(
                    "SELECT tenant_id, version, {SUMS} FROM usage_totals
                     WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE"
                ))
                .await?,
            day_and_month: c.prepare(&day_and_month_sql()).await?,
            insert_events: c.prepare(INSERT_EVENTS).await?,
            first_recorded: c.prepare(FIRST_RECORDED).await?,
            add_rollups: c
                .prepare(&format!(
                    "INSERT INTO usage_rollups (tenant_id, dim, day, key, {SUMS})
                     SELECT tenant_id, dim, day, key, {SUMS}
                     FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int8[],
                                 $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[],
                                 $11::int8[], $12::int8[])
                          WITH ORDINALITY AS u(tenant_id, dim, day, key, {SUMS}, n)
                     ORDER BY n
                     ON CONFLICT (tenant_id, dim, day, key) DO UPDATE SET {}",
                    add("usage_rollups", "excluded")
                ))
                .await?,
            add_totals: c
                .prepare(&format!(
                    "UPDATE usage_totals t SET version = t.version + 1, {}
                     FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                 $6::int8[], $7::int8[], $8::int8[], $9::int8[])
                          AS d(tenant_id, {SUMS})
                     WHERE t.tenant_id = d.tenant_id",
                    add("t", "d")
                ))
                .await?,
            record_commit: c
                .prepare("INSERT INTO writer_commits (batch_id, committed_at) VALUES ($1, $2)")
                .await?,
            record_events: c.prepare(crate::events::pg::RECORD_MANY).await?,
            closed_through: c.prepare(CLOSED_THROUGH).await?,
        })
    }
}

/// Each tenant's sums for day `$2` and for days `[$3, $4)`, from the rollups' total rows.
pub fn day_and_month_sql() -> String {
    let sums = |filter: &str| {
        SUMS.split(", ")
            .map(|col| format!("sum({col}) FILTER (WHERE {filter})::bigint"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT tenant_id, {}, {} FROM usage_rollups
         WHERE tenant_id = ANY($1) AND dim = '' AND day >= $3 AND day < $4
         GROUP BY tenant_id",
        sums("day = $2"),
        sums("true")
    )
}

/// The statement `insert_events` runs (for callers without `Statements`).
pub const INSERT_EVENTS: &str =
    "INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens,
                 output_tokens, estimated_nanos, billed_nanos, input_price, output_price,
                 cost_source, execution_mode, markup, pipeline_stage, agent_name, job_id,
                 user_id, duration_ms, metadata, created_at, cache_read_tokens,
                 cache_write_tokens, reasoning_tokens, cache_read_price, cache_write_price)
             SELECT id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
                 estimated_nanos, billed_nanos, input_price, output_price, cost_source,
                 execution_mode, markup, pipeline_stage, agent_name, job_id, user_id,
                 duration_ms, metadata, $26, cache_read_tokens, cache_write_tokens,
                 reasoning_tokens, cache_read_price, cache_write_price
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[],
                         $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[],
                         $11::int8[], $12::text[], $13::text[], $14::int8[], $15::text[],
                         $16::text[], $17::text[], $18::text[], $19::int8[], $20::text[],
                         $21::int8[], $22::int8[], $23::int8[], $24::int8[], $25::int8[])
                  WITH ORDINALITY AS u(id, tenant_id, event_id, ts, model, input_tokens,
                      output_tokens, estimated_nanos, billed_nanos, input_price, output_price,
                      cost_source, execution_mode, markup, pipeline_stage, agent_name, job_id,
                      user_id, duration_ms, metadata, cache_read_tokens, cache_write_tokens,
                      reasoning_tokens, cache_read_price, cache_write_price, n)
             ORDER BY n
             ON CONFLICT (tenant_id, event_id) WHERE event_id IS NOT NULL DO NOTHING
             RETURNING id";

const FIRST_RECORDED: &str =
    "SELECT e.tenant_id, e.event_id, e.id, e.estimated_nanos, e.billed_nanos
             FROM unnest($1::uuid[], $2::text[]) AS k(tenant_id, event_id)
             JOIN usage_events e ON e.tenant_id = k.tenant_id AND e.event_id = k.event_id";

/// Each tenant's newest stored statement, as the first day after its month (days since the
/// epoch); tenants without one have no row. One index probe a tenant (the primary key).
const CLOSED_THROUGH: &str =
    "SELECT u.t, ((to_date(s.p, 'YYYY-MM') + interval '1 month')::date - date '1970-01-01')::int8
             FROM unnest($1::uuid[]) AS u(t)
             CROSS JOIN LATERAL (SELECT max(period) AS p FROM statements
                                 WHERE tenant_id = u.t) AS s
             WHERE s.p IS NOT NULL";
