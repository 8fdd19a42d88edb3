//! Usage on PostgreSQL: the rollups against the raw events (as SQLite's check, with the same
//! retention horizon from `meta`), and `usage_totals` against the rollups' all-time totals.
use super::{fail, quoted};
use crate::usage::retention::RETAINED_FROM_DAY;
use crate::usage::rollup::{DIMS, JOB_DIM, MODE_DIMS};
use crate::verify::{mismatch, Sums};
use std::collections::BTreeMap;
use tokio_postgres::Transaction;

async fn columns(tx: &Transaction<'_>, table: &str) -> Result<Vec<String>, String> {
    Ok(tx
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The rollup's amount columns: all but its key.
async fn amounts(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    Ok(columns(tx, "usage_rollups")
        .await?
        .into_iter()
        .filter(|n| !["tenant_id", "day", "dim", "key"].contains(&n.as_str()))
        .collect())
}

/// Reads `(tenant, day, [dim,] key, amounts...)` rows into `into`.
async fn read_sums(
    tx: &Transaction<'_>,
    sql: &str,
    dim: Option<&str>,
    n: usize,
    into: &mut Sums,
) -> Result<(), String> {
    for r in tx.query(sql, &[]).await.map_err(fail)? {
        let (tenant, day): (String, i64) = (r.get(0), r.get(1));
        let (dim, first) = match dim {
            Some(d) => (d.to_string(), 2),
            None => (r.get(2), 3),
        };
        let key: String = r.get(first);
        let values = (0..n)
            .map(|i| r.get::<_, Option<i64>>(first + 1 + i).unwrap_or(0))
            .collect();
        into.insert((tenant, day, dim, key), values);
    }
    Ok(())
}

/// Each tenant's rollups equal what its raw events add up to, in every dimension, on every day
/// retention has not reached: `events` counts raw rows, every other amount sums the raw column
/// of the same name.
pub(super) async fn rollups(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let raw_columns = columns(tx, "usage_events").await?;
    let amounts = amounts(tx).await?;
    let (sums, mut problems) = crate::verify::rollup_sums(&amounts, &raw_columns, "::bigint");
    let day = crate::verify::DAY_OF_TS;
    let row = |dim: &str, day: &str, key: String, only: &str| {
        (dim.to_string(), day.to_string(), key, only.to_string())
    };
    let mut groups = vec![row("", day, "''".into(), "true")];
    groups.extend(
        DIMS.iter()
            .map(|d| row(d, day, format!("coalesce({}, '')", quoted(d)), "true")),
    );
    groups.extend(MODE_DIMS.iter().map(|(d, mode)| {
        let only = format!("execution_mode = '{}'", mode.as_str());
        row(d, day, "model".into(), &only)
    }));
    groups.push(row(
        JOB_DIM,
        "0::bigint",
        "job_id".into(),
        "job_id IS NOT NULL",
    ));
    let mut raw = Sums::new();
    for (dim, day, key, only) in &groups {
        let sql = format!(
            "SELECT tenant_id::text, {day}, {key}, {sums} FROM usage_events WHERE {only}
             GROUP BY 1, 2, 3"
        );
        read_sums(tx, &sql, Some(dim), amounts.len(), &mut raw).await?;
    }
    let cols = amounts
        .iter()
        .map(|a| quoted(a))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stored = Sums::new();
    read_sums(
        tx,
        &format!("SELECT tenant_id::text, day, dim, key, {cols} FROM usage_rollups"),
        None,
        amounts.len(),
        &mut stored,
    )
    .await?;
    stored.retain(|_, v| v.iter().any(|x| *x != 0));
    let horizon = tx
        .query_opt(
            "SELECT value FROM meta WHERE key = $1",
            &[&RETAINED_FROM_DAY],
        )
        .await
        .map_err(fail)?
        .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok());
    if let Some(first) = horizon {
        raw.retain(|k, _| k.1 >= first);
        stored.retain(|k, _| k.1 >= first);
    }
    for (k, want) in &raw {
        match stored.get(k) {
            Some(have) if have == want => {}
            have => problems.push(mismatch(k, &amounts, have, Some(want))),
        }
    }
    for (k, have) in &stored {
        if !raw.contains_key(k) {
            problems.push(mismatch(k, &amounts, Some(have), None));
        }
    }
    Ok(problems)
}

/// Each tenant's `usage_totals` row equals the all-time sums of its rollups' total dimension
/// (a missing row counts as zeros), column by column.
pub(super) async fn totals(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let rollup_cols = amounts(tx).await?;
    let amounts: Vec<String> = columns(tx, "usage_totals")
        .await?
        .into_iter()
        .filter(|n| n != "tenant_id" && n != "version")
        .collect();
    let mut problems = Vec::new();
    for a in amounts.iter().filter(|a| !rollup_cols.contains(a)) {
        problems.push(format!(
            "usage_totals.{a} has no column of that name in usage_rollups to check it against"
        ));
    }
    let n = amounts.len();
    let read = |sql: String| async move {
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in tx.query(&sql, &[]).await.map_err(fail)? {
            let values = (1..=n)
                .map(|i| r.get::<_, Option<i64>>(i).unwrap_or(0))
                .collect();
            out.insert(r.get(0), values);
        }
        Ok::<_, String>(out)
    };
    let list =
        |f: &dyn Fn(&str) -> String| amounts.iter().map(|a| f(a)).collect::<Vec<_>>().join(", ");
    let stored = read(format!(
        "SELECT tenant_id::text, {} FROM usage_totals",
        list(&|a| quoted(a))
    ))
    .await?;
    let summed = read(format!(
        "SELECT tenant_id::text, {} FROM usage_rollups WHERE dim = '' GROUP BY 1",
        list(&|a| if rollup_cols.iter().any(|c| c == a) {
            format!("sum({})::bigint", quoted(a))
        } else {
            "0::bigint".into()
        })
    ))
    .await?;
    let zeros = vec![0; amounts.len()];
    let tenants: std::collections::BTreeSet<&String> = stored.keys().chain(summed.keys()).collect();
    for tenant in tenants {
        let (s, r) = (
            stored.get(tenant).unwrap_or(&zeros),
            summed.get(tenant).unwrap_or(&zeros),
        );
        let diffs: Vec<String> = amounts
            .iter()
            .zip(s.iter().zip(r))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, (a, b))| format!("{name} {a} in the totals, {b} in the rollups"))
            .collect();
        if !diffs.is_empty() {
            problems.push(format!(
                "tenant {tenant}: table usage_totals, {}",
                diffs.join(", ")
            ));
        }
    }
    Ok(problems)
}
