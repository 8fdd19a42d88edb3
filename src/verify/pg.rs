//! `tenantry verify` on PostgreSQL (docs/SCALE_OUT.md §6.3): the SQLite checks' counterparts,
//! in one `REPEATABLE READ READ ONLY` transaction so every check sees one state while replicas
//! write, each in a savepoint so one that cannot run does not stop the others. PostgreSQL
//! enforces foreign keys, but a restore under `session_replication_role = replica` bypasses
//! them, so the anti-joins stay. Added: the schema against the binary's, and `usage_totals`
//! against the rollups.
mod secrets;
mod usage;

use super::{rows, Check, DEFAULT_TENANT};
use crate::config::Config;
use crate::db::pg::{describe, migrate, schema, Pg};
use tokio_postgres::{IsolationLevel, Transaction};

pub(crate) fn fail(e: tokio_postgres::Error) -> String {
    describe(&e)
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs every check; refuses (checking nothing) a database at another schema version.
pub async fn run(config: &Config, url: &str) -> Result<Vec<Check>, String> {
    let pg = Pg::new(url, 1)?;
    let mut client = pg.client().await?;
    let version = migrate::current(&client).await?;
    if version != migrate::latest() {
        return Err(format!(
            "the PostgreSQL database is at schema version {version}, this binary's is {}; {}",
            migrate::latest(),
            if version > migrate::latest() {
                "upgrade tenantry first"
            } else {
                "run `tenantry migrate` first"
            }
        ));
    }
    let raw: &mut tokio_postgres::Client = &mut client;
    let mut tx = raw
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| format!("cannot begin a read transaction: {}", fail(e)))?;
    let mut checks = Vec::new();
    for name in [
        "schema",
        "integrity",
        "foreign keys",
        "tenant ownership",
        "default tenant",
        "usage rollups",
        "usage totals",
        "provider keys",
        "webhook secrets",
    ] {
        let sp = tx
            .savepoint("verify_check")
            .await
            .map_err(|e| format!("cannot make a savepoint: {}", fail(e)))?;
        let found = one(name, config, &sp).await;
        // Only reads: rolling back keeps a failed statement from aborting the next checks.
        sp.rollback()
            .await
            .map_err(|e| format!("cannot roll back a savepoint: {}", fail(e)))?;
        checks.push(found);
    }
    Ok(checks)
}

async fn one(name: &'static str, config: &Config, tx: &Transaction<'_>) -> Check {
    if name == "integrity" {
        return match integrity(tx).await {
            Ok(Some(problems)) => Check::new(name, Ok(problems)),
            Ok(None) => Check {
                name,
                problems: vec![],
                note: Some(
                    "skipped: the amcheck extension is not installed in this database \
                     (CREATE EXTENSION amcheck to check every index and table)"
                        .into(),
                ),
            },
            Err(e) => Check::new(name, Err(e)),
        };
    }
    let found = match name {
        "schema" => schema_check(tx).await,
        "foreign keys" => foreign_keys(tx).await,
        "tenant ownership" => ownership(tx).await,
        "default tenant" => default_tenant(tx).await,
        "usage rollups" => usage::rollups(tx).await,
        "usage totals" => usage::totals(tx).await,
        "provider keys" => secrets::provider_keys(config, tx).await,
        _ => secrets::webhook_secrets(config, tx).await,
    };
    Check::new(name, found)
}

/// The tables, columns, keys, indexes and checks this binary expects (SQLite's schema under
/// the type mapping, as the parity test compares them).
async fn schema_check(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let pg = schema::postgres(tx.client()).await?;
    Ok(schema::differences(&schema::expected()?, &pg))
}

/// `amcheck`'s B-tree and heap checks of every index and table, or `None` when the extension
/// is not installed (verify only reads, so it does not install it).
async fn integrity(tx: &Transaction<'_>) -> Result<Option<Vec<String>>, String> {
    let installed = tx
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
        .await
        .map_err(fail)?
        .is_some();
    if !installed {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let indexes = tx
        .query(
            "SELECT c.oid, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
             WHERE n.nspname = 'public' AND c.relkind = 'i' AND a.amname = 'btree' ORDER BY 2",
            &[],
        )
        .await
        .map_err(fail)?;
    for r in indexes {
        let (oid, name): (u32, String) = (r.get(0), r.get(1));
        if let Err(e) = tx.query("SELECT bt_index_check($1::oid)", &[&oid]).await {
            problems.push(format!("index {name}: {}", fail(e)));
        }
    }
    // amcheck before 1.3 (an extension created on PostgreSQL 13 and kept through upgrades)
    // has no heap check; its indexes are still checked.
    let heap = tx
        .query_one("SELECT to_regproc('verify_heapam') IS NOT NULL", &[])
        .await
        .map_err(fail)?
        .get::<_, bool>(0);
    if !heap {
        return Ok(Some(problems));
    }
    let tables = tx
        .query(
            "SELECT c.relname::text,
                    (SELECT count(*) FROM verify_heapam(c.oid)) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
            &[],
        )
        .await
        .map_err(fail)?;
    for r in tables {
        let n: i64 = r.get(1);
        if n > 0 {
            problems.push(format!(
                "table {}: {n} corrupt tuples or pages (verify_heapam)",
                r.get::<_, String>(0)
            ));
        }
    }
    Ok(Some(problems))
}

/// Rows whose foreign key names no parent row: an anti-join per foreign key of the schema.
async fn foreign_keys(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let pg = schema::postgres(tx.client()).await?;
    let mut problems = Vec::new();
    for (table, t) in &pg {
        for (cols, parent, parent_cols, _) in &t.foreign_keys {
            let present: Vec<String> = cols
                .iter()
                .map(|c| format!("c.{} IS NOT NULL", quoted(c)))
                .collect();
            let joined: Vec<String> = cols
                .iter()
                .zip(parent_cols)
                .map(|(c, p)| format!("p.{} = c.{}", quoted(p), quoted(c)))
                .collect();
            let sql = format!(
                "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                quoted(table),
                present.join(" AND "),
                quoted(parent),
                joined.join(" AND ")
            );
            let n: i64 = tx.query_one(&sql, &[]).await.map_err(fail)?.get(0);
            if n > 0 {
                problems.push(format!(
                    "{} of table {table} refer to missing rows of {parent}",
                    rows(n)
                ));
            }
        }
    }
    Ok(problems)
}

/// Every row of every table with a `tenant_id` column belongs to an existing tenant.
async fn ownership(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let tables = tx
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1",
            &[],
        )
        .await
        .map_err(fail)?;
    let mut problems = Vec::new();
    for r in tables {
        let table: String = r.get(0);
        let sql = format!(
            "SELECT tenant_id::text, count(*) FROM {} t
             WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE id = t.tenant_id)
             GROUP BY 1 ORDER BY 1",
            quoted(&table)
        );
        for r in tx.query(&sql, &[]).await.map_err(fail)? {
            problems.push(format!(
                "table {table} has {} of tenant {}, which does not exist",
                rows(r.get(1)),
                r.get::<_, Option<String>>(0)
                    .unwrap_or_else(|| "NULL".into())
            ));
        }
    }
    Ok(problems)
}

/// The default tenant exists and is active (a trigger guards both; a restore may not).
async fn default_tenant(tx: &Transaction<'_>) -> Result<Vec<String>, String> {
    let status: Option<String> = tx
        .query_opt(
            "SELECT status FROM tenants WHERE id::text = $1",
            &[&DEFAULT_TENANT],
        )
        .await
        .map_err(fail)?
        .map(|r| r.get(0));
    Ok(match status.as_deref() {
        Some("active") => vec![],
        Some(other) => vec![format!(
            "the default tenant {DEFAULT_TENANT} is {other}, not active"
        )],
        None => vec![format!(
            "the default tenant {DEFAULT_TENANT} is missing from table tenants"
        )],
    })
}
