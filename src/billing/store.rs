//! Billing's SQL: statement lines from the daily rollups' per-execution-mode dimensions, stored
//! final statements, and the per-tenant month totals the lists and the report need. Nothing here
//! reads raw usage events.
use super::period::Period;
use super::statement::{Line, ReportRow};
use crate::time::Micros;
use crate::usage::money::Nanousd;
use crate::usage::rollup::{Totals, MODE_DIMS};
use rusqlite::{params, Connection, OptionalExtension, Row};

const AMOUNTS: &str = "events, input_tokens, output_tokens, cache_read_tokens, \
                       cache_write_tokens, reasoning_tokens, estimated_nanos, billed_nanos";

fn totals(r: &Row, first: usize) -> rusqlite::Result<Totals> {
    Ok(Totals {
        events: r.get(first)?,
        input_tokens: r.get(first + 1)?,
        output_tokens: r.get(first + 2)?,
        cache_read_tokens: r.get(first + 3)?,
        cache_write_tokens: r.get(first + 4)?,
        reasoning_tokens: r.get(first + 5)?,
        estimated: Nanousd::from_nanos(r.get(first + 6)?),
        billed: Nanousd::from_nanos(r.get(first + 7)?),
    })
}

pub(super) fn mode_named(mode: &str) -> &'static str {
    match mode {
        "byo_key" => "byo_key",
        _ => "hosted",
    }
}

/// A tenant's lines for a period, summed from the rollups: (days in the month x models) rows.
pub fn live_lines(c: &Connection, tenant: &str, period: Period) -> rusqlite::Result<Vec<Line>> {
    let (from, to) = period.days();
    let mut stmt = c.prepare_cached(
        "SELECT key, sum(events), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
                sum(cache_write_tokens), sum(reasoning_tokens), sum(estimated_nanos),
                sum(billed_nanos)
         FROM usage_rollups WHERE tenant_id = ?1 AND dim = ?2 AND day >= ?3 AND day < ?4
         GROUP BY key",
    )?;
    let mut lines = Vec::new();
    for (dim, mode) in MODE_DIMS {
        let rows = stmt.query_map(params![tenant, dim, from, to], |r| {
            Ok(Line::new(r.get(0)?, mode.as_str(), &totals(r, 1)?))
        })?;
        for l in rows {
            let l = l?;
            if l.events != 0 {
                lines.push(l);
            }
        }
    }
    Ok(lines)
}

/// A stored final statement's lines and when it was finalized, if it is stored.
pub fn stored(
    c: &Connection,
    tenant: &str,
    period: Period,
) -> rusqlite::Result<Option<(Vec<Line>, Micros)>> {
    let label = period.label();
    let at: Option<Micros> = c
        .query_row(
            "SELECT finalized_at FROM statements WHERE tenant_id = ?1 AND period = ?2",
            params![tenant, label],
            |r| r.get(0),
        )
        .optional()?;
    let Some(at) = at else { return Ok(None) };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT model, execution_mode, {AMOUNTS} FROM statement_lines
         WHERE tenant_id = ?1 AND period = ?2"
    ))?;
    let lines = stmt
        .query_map(params![tenant, label], |r| {
            let mode: String = r.get(1)?;
            Ok(Line::new(r.get(0)?, mode_named(&mode), &totals(r, 2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((lines, at)))
}

/// Stores a final statement and its lines; false (and nothing written) when one is stored
/// already, so finalizing twice, from the background or from a read, stores it once.
pub fn insert_final(
    c: &Connection,
    tenant: &str,
    period: Period,
    lines: &[Line],
    amount_due: Nanousd,
    at: Micros,
) -> rusqlite::Result<bool> {
    let label = period.label();
    let mut t = Totals::default();
    for l in lines {
        t.add(&l.totals());
    }
    let n = c.execute(
        &format!(
            "INSERT INTO statements (tenant_id, period, {AMOUNTS}, amount_due_nanos, finalized_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (tenant_id, period) DO NOTHING"
        ),
        params![
            tenant,
            label,
            t.events,
            t.input_tokens,
            t.output_tokens,
            t.cache_read_tokens,
            t.cache_write_tokens,
            t.reasoning_tokens,
            t.estimated.nanos(),
            t.billed.nanos(),
            amount_due.nanos(),
            at
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let mut stmt = c.prepare_cached(&format!(
        "INSERT INTO statement_lines (tenant_id, period, model, execution_mode, {AMOUNTS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?;
    for l in lines {
        stmt.execute(params![
            tenant,
            label,
            l.model,
            l.execution_mode,
            l.events,
            l.input_tokens,
            l.output_tokens,
            l.cache_read_tokens,
            l.cache_write_tokens,
            l.reasoning_tokens,
            l.estimated_cost_usd.nanos(),
            l.billed_cost_usd.nanos()
        ])?;
    }
    Ok(true)
}

/// A tenant's months with usage, oldest first, as (period, events, billed), from its daily
/// total rollups (one row a day).
pub fn months(c: &Connection, tenant: &str) -> rusqlite::Result<Vec<(Period, i64, Nanousd)>> {
    let mut stmt = c.prepare_cached(
        "SELECT day, events, billed_nanos FROM usage_rollups
         WHERE tenant_id = ?1 AND dim = '' ORDER BY day",
    )?;
    let rows = stmt.query_map([tenant], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    Ok(add_up_months(rows.collect::<rusqlite::Result<Vec<_>>>()?))
}

/// Daily (day, events, billed) rows, in day order, added up by month (both stores).
pub(super) fn add_up_months(
    days: impl IntoIterator<Item = (i64, i64, i64)>,
) -> Vec<(Period, i64, Nanousd)> {
    let mut out: Vec<(Period, i64, Nanousd)> = Vec::new();
    for (day, events, billed) in days {
        if events == 0 {
            continue;
        }
        let p = Period::of_day(day);
        match out.last_mut() {
            Some(last) if last.0 == p => {
                last.1 = last.1.saturating_add(events);
                last.2 = last.2.saturating_add(Nanousd::from_nanos(billed));
            }
            _ => out.push((p, events, Nanousd::from_nanos(billed))),
        }
    }
    out
}

/// A tenant's stored statements: period label -> (amount due, finalized at).
pub fn finalized(c: &Connection, tenant: &str) -> rusqlite::Result<Vec<(String, Nanousd, Micros)>> {
    let mut stmt = c.prepare_cached(
        "SELECT period, amount_due_nanos, finalized_at FROM statements WHERE tenant_id = ?1",
    )?;
    let rows = stmt.query_map([tenant], |r| {
        Ok((r.get(0)?, Nanousd::from_nanos(r.get(1)?), r.get(2)?))
    })?;
    rows.collect()
}

/// The tenants with usage in a period that have no stored statement for it.
pub fn unfinalized_tenants(c: &Connection, period: Period) -> rusqlite::Result<Vec<String>> {
    let (from, to) = period.days();
    let mut stmt = c.prepare_cached(
        "SELECT t.id FROM tenants t
         WHERE EXISTS (SELECT 1 FROM usage_rollups r WHERE r.tenant_id = t.id AND r.dim = ''
                       AND r.day >= ?1 AND r.day < ?2 AND r.events > 0)
           AND NOT EXISTS (SELECT 1 FROM statements s WHERE s.tenant_id = t.id AND s.period = ?3)",
    )?;
    let rows = stmt.query_map(params![from, to, period.label()], |r| r.get(0))?;
    rows.collect()
}

/// The report of a period not yet final, from the tenants' daily total rollups.
pub fn live_report(c: &Connection, period: Period) -> rusqlite::Result<Vec<ReportRow>> {
    let (from, to) = period.days();
    let mut stmt = c.prepare_cached(
        "SELECT t.id, t.slug, t.name, t.plan, sum(r.events), sum(r.billed_nanos)
         FROM tenants t JOIN usage_rollups r
              ON r.tenant_id = t.id AND r.dim = '' AND r.day >= ?1 AND r.day < ?2
         GROUP BY t.id HAVING sum(r.events) > 0",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        let billed = Nanousd::from_nanos(r.get(5)?);
        report_row(r, billed, super::statement::amount_due(billed))
    })?;
    rows.collect()
}

/// The report of a final period, from its stored statements.
pub fn final_report(c: &Connection, period: Period) -> rusqlite::Result<Vec<ReportRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT t.id, t.slug, t.name, t.plan, s.events, s.billed_nanos, s.amount_due_nanos
         FROM statements s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.period = ?1",
    )?;
    let rows = stmt.query_map([period.label()], |r| {
        report_row(
            r,
            Nanousd::from_nanos(r.get(5)?),
            Nanousd::from_nanos(r.get(6)?),
        )
    })?;
    rows.collect()
}

fn report_row(r: &Row, billed: Nanousd, due: Nanousd) -> rusqlite::Result<ReportRow> {
    Ok(ReportRow {
        tenant_id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        plan: r.get(3)?,
        events: r.get(4)?,
        billed_cost_usd: billed,
        amount_due_usd: due,
        status: super::period::Status::Open,
    })
}

/// The `meta` key of the first period whose statements are not all stored yet.
pub(super) const FINALIZED_THROUGH: &str = "billing_finalized_through";

/// Every period before this one has had all its statements stored (`meta`).
pub fn finalized_through(c: &Connection) -> rusqlite::Result<Option<Period>> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [FINALIZED_THROUGH],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| Period::parse(&v).ok()))
}

pub fn set_finalized_through(c: &Connection, p: Period) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![FINALIZED_THROUGH, p.label()],
    )?;
    Ok(())
}

/// The first month with usage on the instance, from the rollups: where finalizing starts when
/// billing is switched on.
pub fn first_period(c: &Connection) -> rusqlite::Result<Option<Period>> {
    let day: Option<i64> = c.query_row(
        "SELECT min(day) FROM usage_rollups WHERE dim = '' AND events > 0",
        [],
        |r| r.get(0),
    )?;
    Ok(day.map(Period::of_day))
}
