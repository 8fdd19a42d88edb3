//! Billing's SQL on PostgreSQL (issue 19): `store`'s statements over the same tables, returning
//! the same rows. Sums come from the rollups, never from raw usage events; PostgreSQL's `sum()`
//! of BIGINT is NUMERIC, cast back with `::bigint`, so a sum past an i64 fails the statement
//! ("bigint out of range") as SQLite's `sum()` does ("integer overflow").
use super::period::Period;
use super::statement::{Line, ReportRow};
use crate::time::Micros;
use crate::usage::money::Nanousd;
use crate::usage::rollup::{Totals, MODE_DIMS};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

type PgResult<T> = Result<T, tokio_postgres::Error>;

const AMOUNTS: &str = "events, input_tokens, output_tokens, cache_read_tokens, \
                       cache_write_tokens, reasoning_tokens, estimated_nanos, billed_nanos";

fn totals(r: &Row, first: usize) -> Totals {
    Totals {
        events: r.get(first),
        input_tokens: r.get(first + 1),
        output_tokens: r.get(first + 2),
        cache_read_tokens: r.get(first + 3),
        cache_write_tokens: r.get(first + 4),
        reasoning_tokens: r.get(first + 5),
        estimated: Nanousd::from_nanos(r.get(first + 6)),
        billed: Nanousd::from_nanos(r.get(first + 7)),
    }
}

fn sums() -> String {
    AMOUNTS
        .split(", ")
        .map(|c| format!("sum({c})::bigint"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Locks the tenant's `usage_totals` row (creating it as zeros if missing) for the rest of the
/// transaction: every usage writer on every replica takes this lock before it stores events,
/// so a statement stored under it and the events of its period never both commit.
pub async fn lock_tenant(c: &impl GenericClient, tenant: Uuid) -> PgResult<()> {
    c.execute(
        "INSERT INTO usage_totals (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING",
        &[&tenant],
    )
    .await?;
    c.query_one(
        "SELECT 1 FROM usage_totals WHERE tenant_id = $1 FOR UPDATE",
        &[&tenant],
    )
    .await?;
    Ok(())
}

/// A tenant's lines for a period, summed from the rollups: (days in the month x models) rows.
pub async fn live_lines(
    c: &impl GenericClient,
    tenant: Uuid,
    period: Period,
) -> PgResult<Vec<Line>> {
    let (from, to) = period.days();
    let sql = format!(
        "SELECT key, {} FROM usage_rollups
         WHERE tenant_id = $1 AND dim = $2 AND day >= $3 AND day < $4
         GROUP BY key",
        sums()
    );
    let stmt = c.prepare(&sql).await?;
    let mut lines = Vec::new();
    for (dim, mode) in MODE_DIMS {
        for r in c.query(&stmt, &[&tenant, &dim, &from, &to]).await? {
            let l = Line::new(r.get(0), mode.as_str(), &totals(&r, 1));
            if l.events != 0 {
                lines.push(l);
            }
        }
    }
    Ok(lines)
}

/// A stored final statement's lines and when it was finalized, if it is stored.
pub async fn stored(
    c: &impl GenericClient,
    tenant: Uuid,
    period: Period,
) -> PgResult<Option<(Vec<Line>, Micros)>> {
    let label = period.label();
    let Some(at) = c
        .query_opt(
            "SELECT finalized_at FROM statements WHERE tenant_id = $1 AND period = $2",
            &[&tenant, &label],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = c
        .query(
            &format!(
                "SELECT model, execution_mode, {AMOUNTS} FROM statement_lines
                 WHERE tenant_id = $1 AND period = $2"
            ),
            &[&tenant, &label],
        )
        .await?;
    let lines = rows
        .iter()
        .map(|r| {
            let mode: &str = r.get(1);
            Line::new(r.get(0), super::store::mode_named(mode), &totals(r, 2))
        })
        .collect();
    Ok(Some((lines, at.get(0))))
}

/// Stores a final statement and its lines; false (and nothing written) when one is stored
/// already: the primary key and `DO NOTHING` store it once, whichever replica comes first.
pub async fn insert_final(
    c: &impl GenericClient,
    tenant: Uuid,
    period: Period,
    lines: &[Line],
    amount_due: Nanousd,
    at: Micros,
) -> PgResult<bool> {
    let label = period.label();
    let mut t = Totals::default();
    for l in lines {
        t.add(&l.totals());
    }
    let n = c
        .execute(
            &format!(
                "INSERT INTO statements (tenant_id, period, {AMOUNTS}, amount_due_nanos,
                                         finalized_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (tenant_id, period) DO NOTHING"
            ),
            &[
                &tenant,
                &label,
                &t.events,
                &t.input_tokens,
                &t.output_tokens,
                &t.cache_read_tokens,
                &t.cache_write_tokens,
                &t.reasoning_tokens,
                &t.estimated.nanos(),
                &t.billed.nanos(),
                &amount_due.nanos(),
                &at,
            ],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    let stmt = c
        .prepare(&format!(
            "INSERT INTO statement_lines (tenant_id, period, model, execution_mode, {AMOUNTS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .await?;
    for l in lines {
        c.execute(
            &stmt,
            &[
                &tenant,
                &label,
                &l.model,
                &l.execution_mode,
                &l.events,
                &l.input_tokens,
                &l.output_tokens,
                &l.cache_read_tokens,
                &l.cache_write_tokens,
                &l.reasoning_tokens,
                &l.estimated_cost_usd.nanos(),
                &l.billed_cost_usd.nanos(),
            ],
        )
        .await?;
    }
    Ok(true)
}

/// A tenant's months with usage, oldest first, as (period, events, billed), from its daily
/// total rollups (one row a day), added up as `store::months` does.
pub async fn months(c: &impl GenericClient, tenant: Uuid) -> PgResult<Vec<(Period, i64, Nanousd)>> {
    let rows = c
        .query(
            "SELECT day, events, billed_nanos FROM usage_rollups
             WHERE tenant_id = $1 AND dim = '' ORDER BY day",
            &[&tenant],
        )
        .await?;
    Ok(super::store::add_up_months(
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
    ))
}

/// A tenant's stored statements: period label -> (amount due, finalized at).
pub async fn finalized(
    c: &impl GenericClient,
    tenant: Uuid,
) -> PgResult<Vec<(String, Nanousd, Micros)>> {
    let rows = c
        .query(
            "SELECT period, amount_due_nanos, finalized_at FROM statements WHERE tenant_id = $1",
            &[&tenant],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), Nanousd::from_nanos(r.get(1)), r.get(2)))
        .collect())
}

/// The tenants with usage in a period that have no stored statement for it.
pub async fn unfinalized_tenants(c: &impl GenericClient, period: Period) -> PgResult<Vec<Uuid>> {
    let (from, to) = period.days();
    let rows = c
        .query(
            "SELECT t.id FROM tenants t
             WHERE EXISTS (SELECT 1 FROM usage_rollups r WHERE r.tenant_id = t.id AND r.dim = ''
                           AND r.day >= $1 AND r.day < $2 AND r.events > 0)
               AND NOT EXISTS (SELECT 1 FROM statements s
                               WHERE s.tenant_id = t.id AND s.period = $3)",
            &[&from, &to, &period.label()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The report of a period not yet final, from the tenants' daily total rollups.
pub async fn live_report(c: &impl GenericClient, period: Period) -> PgResult<Vec<ReportRow>> {
    let (from, to) = period.days();
    let rows = c
        .query(
            "SELECT t.id, t.slug, t.name, t.plan, sum(r.events)::bigint,
                    sum(r.billed_nanos)::bigint
             FROM tenants t JOIN usage_rollups r
                  ON r.tenant_id = t.id AND r.dim = '' AND r.day >= $1 AND r.day < $2
             GROUP BY t.id HAVING sum(r.events) > 0",
            &[&from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let billed = Nanousd::from_nanos(r.get(5));
            report_row(r, billed, super::statement::amount_due(billed))
        })
        .collect())
}

/// The report of a final period, from its stored statements.
pub async fn final_report(c: &impl GenericClient, period: Period) -> PgResult<Vec<ReportRow>> {
    let rows = c
        .query(
            "SELECT t.id, t.slug, t.name, t.plan, s.events, s.billed_nanos, s.amount_due_nanos
             FROM statements s JOIN tenants t ON t.id = s.tenant_id
             WHERE s.period = $1",
            &[&period.label()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            report_row(
                r,
                Nanousd::from_nanos(r.get(5)),
                Nanousd::from_nanos(r.get(6)),
            )
        })
        .collect())
}

fn report_row(r: &Row, billed: Nanousd, due: Nanousd) -> ReportRow {
    ReportRow {
        tenant_id: r.get::<_, Uuid>(0).to_string(),
        slug: r.get(1),
        name: r.get(2),
        plan: r.get(3),
        events: r.get(4),
        billed_cost_usd: billed,
        amount_due_usd: due,
        status: super::period::Status::Open,
    }
}

/// Every period before this one has had all its statements stored (`meta`).
pub async fn finalized_through(c: &impl GenericClient) -> PgResult<Option<Period>> {
    let v = crate::db::pg::meta::get(c, super::store::FINALIZED_THROUGH).await?;
    Ok(v.and_then(|v| Period::parse(&v).ok()))
}

/// Moves the mark on, never back: two replicas finishing periods out of order leave the later.
pub async fn set_finalized_through(c: &impl GenericClient, p: Period) -> PgResult<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value, excluded.value)",
        &[&super::store::FINALIZED_THROUGH, &p.label()],
    )
    .await?;
    Ok(())
}

/// The first month with usage on the instance, from the rollups.
pub async fn first_period(c: &impl GenericClient) -> PgResult<Option<Period>> {
    let day: Option<i64> = c
        .query_one(
            "SELECT min(day) FROM usage_rollups WHERE dim = '' AND events > 0",
            &[],
        )
        .await?
        .get(0);
    Ok(day.map(Period::of_day))
}
