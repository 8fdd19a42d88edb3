//! The copy's checks, inside its transaction before the commit: each table's rows counted on
//! both stores, and per tenant its count and the sums that money and limits depend on (tokens,
//! estimated and billed nanos, rollup and statement amounts, the latest settings version).
//! Any difference fails the copy, so nothing is committed.
use super::{lite_fail, pg_fail, quoted, rows_word};
use crate::db::pg::schema::{Schema, Table};
use std::collections::BTreeMap;
use tokio_postgres::Transaction;

/// Columns summed per tenant wherever a table has them: usage, rollups, statements, totals.
const AMOUNTS: &[&str] = &[
    "events",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated_nanos",
    "billed_nanos",
    "amount_due_nanos",
];

/// tenant -> the aggregates, as text so both stores' numbers compare alike.
type PerTenant = BTreeMap<String, Vec<String>>;

/// The per-tenant aggregates of `t` (count first) and the words its report line ends with;
/// `None` for a table without a `tenant_id` column.
fn aggregates(table: &str, t: &Table) -> Option<(Vec<(String, String)>, &'static str)> {
    if !t.columns.iter().any(|c| c.0 == "tenant_id") {
        return None;
    }
    let mut exprs = vec![("count".to_string(), "count(*)".to_string())];
    let mut words = "counts per tenant match";
    for (name, ty, _) in &t.columns {
        if ty == "integer" && AMOUNTS.contains(&name.as_str()) {
            exprs.push((
                format!("sum of {name}"),
                format!("coalesce(sum({}), 0)", quoted(name)),
            ));
            words = "counts and per-tenant sums match";
        }
    }
    if table == "settings_versions" {
        exprs.push(("latest version".into(), "max(version)".into()));
        words = "counts and per-tenant latest versions match";
    }
    Some((exprs, words))
}

fn sqlite_per_tenant(
    snap: &rusqlite::Connection,
    table: &str,
    exprs: &[(String, String)],
) -> Result<PerTenant, String> {
    let cols: Vec<String> = exprs
        .iter()
        .map(|(_, e)| format!("CAST({e} AS TEXT)"))
        .collect();
    let sql = format!(
        "SELECT CAST(tenant_id AS TEXT), {} FROM {} GROUP BY tenant_id",
        cols.join(", "),
        quoted(table)
    );
    let mut stmt = snap.prepare(&sql).map_err(lite_fail)?;
    let mut rows = stmt.query([]).map_err(lite_fail)?;
    let mut out = PerTenant::new();
    while let Some(r) = rows.next().map_err(lite_fail)? {
        let values = (1..=exprs.len())
            .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(lite_fail)?;
        out.insert(r.get(0).map_err(lite_fail)?, values);
    }
    Ok(out)
}

async fn pg_per_tenant(
    tx: &Transaction<'_>,
    table: &str,
    exprs: &[(String, String)],
) -> Result<PerTenant, String> {
    let cols: Vec<String> = exprs.iter().map(|(_, e)| format!("({e})::text")).collect();
    let sql = format!(
        "SELECT tenant_id::text, {} FROM {} GROUP BY tenant_id",
        cols.join(", "),
        quoted(table)
    );
    let mut out = PerTenant::new();
    for r in tx
        .query(&sql, &[])
        .await
        .map_err(pg_fail("cannot check the copy"))?
    {
        let values = (1..=exprs.len())
            .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
            .collect();
        out.insert(r.get(0), values);
    }
    Ok(out)
}

fn differs(table: &str, what: String) -> String {
    format!(
        "the copy does not match the SQLite database, nothing was copied: table {table}, {what}"
    )
}

/// One line per table in `order`, and the rows counted in all of them; an error at the first
/// difference.
pub(super) async fn compare(
    snap: &rusqlite::Connection,
    tx: &Transaction<'_>,
    order: &[String],
    pg: &Schema,
) -> Result<(Vec<String>, i64), String> {
    let mut lines = Vec::new();
    let mut total = 0;
    for table in order {
        let count = format!("SELECT count(*) FROM {}", quoted(table));
        let lite: i64 = snap
            .query_row(&count, [], |r| r.get(0))
            .map_err(lite_fail)?;
        let copied: i64 = tx
            .query_one(&count, &[])
            .await
            .map_err(pg_fail("cannot check the copy"))?
            .get(0);
        if lite != copied {
            return Err(differs(
                table,
                format!(
                    "{} in SQLite, {} in PostgreSQL",
                    rows_word(lite),
                    rows_word(copied)
                ),
            ));
        }
        total += lite;
        let Some((exprs, words)) = aggregates(table, &pg[table]) else {
            lines.push(format!("{table}: {}, count matches", rows_word(lite)));
            continue;
        };
        let (want, have) = (
            sqlite_per_tenant(snap, table, &exprs)?,
            pg_per_tenant(tx, table, &exprs).await?,
        );
        for tenant in want.keys().chain(have.keys()) {
            let (w, h) = (want.get(tenant), have.get(tenant));
            if w == h {
                continue;
            }
            let what = match (w, h) {
                (Some(w), Some(h)) => exprs
                    .iter()
                    .zip(w.iter().zip(h))
                    .filter(|(_, (a, b))| a != b)
                    .map(|((name, _), (a, b))| format!("{name} {a} in SQLite, {b} in PostgreSQL"))
                    .collect::<Vec<_>>()
                    .join(", "),
                (Some(_), None) => "no rows in PostgreSQL".into(),
                _ => "no rows in SQLite".into(),
            };
            return Err(differs(table, format!("tenant {tenant}: {what}")));
        }
        lines.push(format!("{table}: {}, {words}", rows_word(lite)));
    }
    Ok((lines, total))
}

/// `usage_totals`' amount columns, each the rollups' column of the same name.
pub(super) fn total_amounts(pg: &Schema) -> Result<Vec<String>, String> {
    let (Some(totals), Some(rollups)) = (pg.get("usage_totals"), pg.get("usage_rollups")) else {
        return Err("the PostgreSQL schema has no usage_totals or usage_rollups".into());
    };
    let mut out = Vec::new();
    for (name, _, _) in &totals.columns {
        if name == "tenant_id" || name == "version" {
            continue;
        }
        if !rollups.columns.iter().any(|c| &c.0 == name) {
            return Err(format!(
                "usage_totals.{name} has no column of that name in usage_rollups to fill it from"
            ));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// `usage_totals` equals each tenant's all-time total of the rollups (read back, not assumed).
pub(super) async fn totals(
    tx: &Transaction<'_>,
    pg: &Schema,
    filled: u64,
) -> Result<String, String> {
    let amounts = total_amounts(pg)?;
    let mismatch: i64 = tx
        .query_one(
            &format!(
                "SELECT count(*) FROM usage_totals t FULL JOIN (
                     SELECT tenant_id, {sums} FROM usage_rollups WHERE dim = '' GROUP BY tenant_id
                 ) r USING (tenant_id)
                 WHERE ({t}) IS DISTINCT FROM ({r})",
                sums = amounts
                    .iter()
                    .map(|a| format!("sum({q})::bigint AS {q}", q = quoted(a)))
                    .collect::<Vec<_>>()
                    .join(", "),
                t = amounts
                    .iter()
                    .map(|a| format!("t.{}", quoted(a)))
                    .collect::<Vec<_>>()
                    .join(", "),
                r = amounts
                    .iter()
                    .map(|a| format!("r.{}", quoted(a)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            &[],
        )
        .await
        .map_err(pg_fail("cannot check usage_totals"))?
        .get(0);
    if mismatch > 0 {
        return Err(differs(
            "usage_totals",
            format!("{mismatch} tenants' totals differ from the rollups"),
        ));
    }
    Ok(format!(
        "usage_totals: {}, equal to the rollups' all-time totals",
        rows_word(filled as i64)
    ))
}
