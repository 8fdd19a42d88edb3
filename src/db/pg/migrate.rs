//! PostgreSQL's migrations, embedded from `migrations/postgres/NNNN_name.sql` and recorded in
//! `schema_migrations`. The first is a baseline equal to SQLite's schema at the same number
//! (SQLite's history is not replayed); later ones carry the same number as their SQLite twin.
//! Each runs in one transaction under a transaction-level advisory lock, so replicas that start
//! together migrate once: the second waits, then finds nothing pending.
use super::describe;
use include_dir::{include_dir, Dir};
use tokio_postgres::Client;

static MIGRATIONS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/migrations/postgres");

/// The advisory lock's key: "tenantry" in ASCII, so it does not collide with another app's.
pub const LOCK: i64 = 0x7465_6e61_6e74_7279;

/// The migrations in order, as (version, name, sql).
pub fn all() -> Vec<(i64, &'static str, &'static str)> {
    let mut out: Vec<_> = MIGRATIONS
        .files()
        .filter_map(|f| {
            let name = f.path().file_name()?.to_str()?;
            let version: i64 = name.split('_').next()?.parse().ok()?;
            Some((version, name, f.contents_utf8()?))
        })
        .collect();
    out.sort_by_key(|m| m.0);
    out
}

pub fn latest() -> i64 {
    all().last().map(|m| m.0).unwrap_or(0)
}

/// The newest applied version, 0 for an empty database.
pub async fn current(c: &Client) -> Result<i64, String> {
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| format!("cannot read the schema version: {}", describe(&e)))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    c.query_one(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        &[],
    )
    .await
    .map(|r| r.get(0))
    .map_err(|e| format!("cannot read the schema version: {}", describe(&e)))
}

/// Applies every pending migration; returns the versions applied.
pub async fn apply(c: &mut Client) -> Result<Vec<i64>, String> {
    let known = latest();
    let mut applied = Vec::new();
    for (version, name, sql) in all() {
        let fail = |e: tokio_postgres::Error| format!("migration {name} failed: {}", describe(&e));
        let tx = c.transaction().await.map_err(fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await
            .map_err(fail)?;
        // `IF NOT EXISTS` on an existing table is a NOTICE, which would reach the log.
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(fail)?;
        // Read under the lock: another replica may have applied it while this one waited.
        let have: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(fail)?
            .get(0);
        if have > known {
            return Err(format!(
                "database schema version {have} is newer than this binary knows ({known}); upgrade tenantry"
            ));
        }
        if version <= have {
            continue;
        }
        tx.batch_execute(sql).await.map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        applied.push(version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL starts at SQLite's version, so one number names one schema on both stores.
    #[test]
    fn the_postgres_baseline_is_numbered_like_the_sqlite_schema_it_copies() {
        let first = all().first().map(|m| m.0).unwrap();
        assert_eq!(first, 10, "the baseline equals SQLite's schema at 0010");
        assert_eq!(latest(), crate::db::migrate::latest());
        let versions: Vec<i64> = all().iter().map(|m| m.0).collect();
        assert_eq!(versions, (first..=latest()).collect::<Vec<_>>());
    }
}
