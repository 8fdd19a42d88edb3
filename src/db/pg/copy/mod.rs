//! `tenantry copy --to <postgres-url>`: the way a single-binary instance moves to PostgreSQL
//! (docs/SCALE_OUT.md §6.3, docs/OPERATIONS.md "Moving to PostgreSQL"). The SQLite file is read
//! in one read transaction (one snapshot, also beside a running server) and written into an
//! empty PostgreSQL database in one transaction: table by table in foreign-key order, driven by
//! the columns the catalogs name, so a new table or column needs no code here. Then identities
//! continue after the copied rows, `usage_totals` is filled from the rollups, and counts and
//! per-tenant sums are compared before anything commits: a failure leaves the target as it was.
mod check;
mod rows;

use super::{describe, schema, Pg};
use crate::config::Config;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;
use tokio_postgres::Transaction;

pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000000";

/// A name quoted as an SQL identifier (the same rule on both stores).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn rows_word(n: i64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

fn pg_fail(what: &str) -> impl Fn(tokio_postgres::Error) -> String + '_ {
    move |e| format!("{what}: {}", describe(&e))
}

fn lite_fail(e: rusqlite::Error) -> String {
    format!("cannot read the SQLite database: {e}")
}

/// Copies this data dir's SQLite database into the PostgreSQL database at `url`; the report's
/// lines, one per table and a last one, once everything committed.
pub async fn run(config: &Config, url: &str) -> Result<Vec<String>, String> {
    let path = config.db_path();
    if !path.is_file() {
        return Err(format!("no database at {}", path.display()));
    }
    // Brings an older file to this binary's schema, the one PostgreSQL's migrations match.
    drop(crate::db::Db::open(&path, config.sync_full)?);
    let mut lite = open_read_only(&path)?;
    let snap = lite.transaction().map_err(lite_fail)?;
    // The snapshot starts with the first read: everything below reads this one state.
    let version = crate::db::migrate::current(&snap).map_err(lite_fail)?;
    let lite_schema = schema::sqlite(&snap).map_err(lite_fail)?;

    // The pool's messages name TENANTRY_DATABASE_URL; here the URL came from --to.
    let to_flag = |e: String| e.replace("TENANTRY_DATABASE_URL", "--to");
    let pg = Pg::open(url, 1).await.map_err(to_flag)?;
    let mut client = pg.client().await?;
    let pg_version = super::migrate::current(&client).await?;
    if pg_version != version {
        return Err(format!(
            "the SQLite database is at schema version {version}, PostgreSQL at {pg_version}; \
             both must be this binary's ({})",
            super::migrate::latest()
        ));
    }
    let pg_schema = schema::postgres(&client).await?;
    let differences = schema::differences(&lite_schema, &pg_schema);
    if let Some(first) = differences.first() {
        return Err(format!(
            "the PostgreSQL schema differs from SQLite's ({first}); nothing was copied"
        ));
    }
    let raw: &mut tokio_postgres::Client = &mut client;
    let tx = raw
        .transaction()
        .await
        .map_err(pg_fail("cannot begin a transaction"))?;
    // A second copy started at the same time waits here, then finds the database not empty.
    tx.batch_execute("LOCK TABLE tenants IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(pg_fail("cannot lock the target"))?;
    refuse_non_empty(&tx, &pg_schema).await?;

    let order = foreign_key_order(&lite_schema);
    for table in &order {
        rows::copy_table(&snap, &tx, table, &pg_schema[table]).await?;
    }
    continue_identities(&tx).await?;
    let totals = fill_usage_totals(&tx, &pg_schema).await?;
    let (mut lines, total) = check::compare(&snap, &tx, &order, &pg_schema).await?;
    lines.push(check::totals(&tx, &pg_schema, totals).await?);
    tx.commit()
        .await
        .map_err(pg_fail("cannot commit the copy"))?;
    lines.push(format!(
        "copied {} tables ({}) into PostgreSQL at schema version {version}; committed",
        order.len(),
        rows_word(total)
    ));
    Ok(lines)
}

/// Read-only: the copy never writes the SQLite file (beyond `Db::open`'s migrations).
fn open_read_only(path: &Path) -> Result<Connection, String> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(lite_fail)?;
    Ok(c)
}

/// Refuses a database holding anything beyond what the migrations create: the default tenant
/// and its settings version 1. What is found is named by table, never by value.
async fn refuse_non_empty(tx: &Transaction<'_>, pg: &schema::Schema) -> Result<(), String> {
    let mut found = Vec::new();
    for name in pg.keys().filter(|n| *n != "schema_migrations") {
        let (filter, beyond) = match name.as_str() {
            "tenants" => (
                format!("WHERE id <> '{DEFAULT_TENANT}'"),
                " beyond the default tenant",
            ),
            "settings_versions" => (
                format!("WHERE NOT (tenant_id = '{DEFAULT_TENANT}' AND version = 1)"),
                " beyond the default tenant's first settings",
            ),
            _ => (String::new(), ""),
        };
        let sql = format!("SELECT count(*) FROM {} {filter}", quoted(name));
        let n: i64 = tx
            .query_one(&sql, &[])
            .await
            .map_err(pg_fail("cannot read the target"))?
            .get(0);
        if n > 0 {
            found.push(format!("{name} has {}{beyond}", rows_word(n)));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the PostgreSQL database is not empty ({}); copy only into a new database; nothing was copied",
        found.join(", ")
    ))
}

/// Tables in an order where each comes after the tables its foreign keys refer to; ties by
/// name, so the report's lines keep their order.
fn foreign_key_order(s: &schema::Schema) -> Vec<String> {
    let mut pending: BTreeMap<&str, Vec<&str>> = s
        .iter()
        .map(|(name, t)| {
            let parents = t
                .foreign_keys
                .iter()
                .map(|fk| fk.1.as_str())
                .filter(|p| p != name && s.contains_key(*p))
                .collect();
            (name.as_str(), parents)
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<&str> = pending
            .iter()
            .filter(|(_, parents)| parents.iter().all(|p| out.iter().any(|o| o == p)))
            .map(|(n, _)| *n)
            .collect();
        // A cycle cannot be ordered; copy the rest by name and let the keys speak.
        let next = if ready.is_empty() {
            pending.keys().copied().collect()
        } else {
            ready
        };
        for n in next {
            pending.remove(n);
            out.push(n.to_string());
        }
    }
    out
}

/// New rows get identities after the copied ones: each identity sequence restarts at the
/// column's maximum plus one.
async fn continue_identities(tx: &Transaction<'_>) -> Result<(), String> {
    let fail = pg_fail("cannot set the identities");
    let columns = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND is_identity = 'YES' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(&fail)?;
    for r in columns {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2),
                           coalesce((SELECT max({c}) FROM {t}), 0) + 1, false)",
            c = quoted(&column),
            t = quoted(&table)
        );
        tx.execute(&sql, &[&quoted(&table), &column])
            .await
            .map_err(&fail)?;
    }
    Ok(())
}

/// One `usage_totals` row per tenant with rollups: the all-time sums of the total dimension
/// (`dim = ''`, as `usage::store::total` reads it), at version 0. Its amount columns are the
/// rollups' of the same name. Returns how many rows.
async fn fill_usage_totals(tx: &Transaction<'_>, pg: &schema::Schema) -> Result<u64, String> {
    let amounts = check::total_amounts(pg)?;
    let cols = amounts.iter().map(|a| quoted(a)).collect::<Vec<_>>();
    let sums = cols
        .iter()
        .map(|c| format!("sum({c})::bigint"))
        .collect::<Vec<_>>();
    let sql = format!(
        "INSERT INTO usage_totals (tenant_id, version, {}) SELECT tenant_id, 0, {}
         FROM usage_rollups WHERE dim = '' GROUP BY tenant_id",
        cols.join(", "),
        sums.join(", ")
    );
    tx.execute(&sql, &[])
        .await
        .map_err(pg_fail("cannot fill usage_totals"))
}
