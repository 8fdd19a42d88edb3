//! Forward-only schema migrations, embedded in the binary from `migrations/sqlite/NNNN_name.sql` and
//! tracked in `PRAGMA user_version`. A database newer than this binary is refused, not guessed at.
use include_dir::{include_dir, Dir};
use rusqlite::Connection;

static MIGRATIONS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/migrations/sqlite");

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

pub fn current(c: &Connection) -> rusqlite::Result<i64> {
    c.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies every pending migration, each in its own transaction with its version bump.
pub fn apply(c: &mut Connection) -> Result<Vec<i64>, String> {
    apply_up_to(c, latest())
}

/// Applies the pending migrations up to and including version `target`: `apply` for a server;
/// an older target serves upgrade tests and the benchmark's before/after baseline.
pub fn apply_up_to(c: &mut Connection, target: i64) -> Result<Vec<i64>, String> {
    let have = current(c).map_err(|e| format!("cannot read schema version: {e}"))?;
    let known = latest();
    if have > known {
        return Err(format!(
            "database schema version {have} is newer than this binary knows ({known}); upgrade tenantry"
        ));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in all().into_iter().filter(|m| m.0 > have && m.0 <= target) {
        let tx = c
            .transaction()
            .map_err(|e| format!("migration {name}: {e}"))?;
        tx.execute_batch(sql)
            .and_then(|_| tx.pragma_update(None, "user_version", version))
            .and_then(|_| tx.commit())
            .map_err(|e| format!("migration {name} failed: {e}"))?;
        applied.push(version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions after `after`, as `apply` runs them.
    fn versions_after(after: i64) -> Vec<i64> {
        all().iter().map(|m| m.0).filter(|v| *v > after).collect()
    }

    #[test]
    fn migrations_are_numbered_without_gaps() {
        let expected: Vec<i64> = (1..=latest()).collect();
        assert_eq!(versions_after(0), expected);
    }

    #[test]
    fn fresh_database_gets_every_migration_and_the_default_tenant() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        apply(&mut c).unwrap();
        assert_eq!(current(&c).unwrap(), latest());
        let slug: String = c
            .query_row(
                "SELECT slug FROM tenants WHERE id = '00000000-0000-0000-0000-000000000000'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(slug, "default");
        assert!(
            apply(&mut c).unwrap().is_empty(),
            "second run applies nothing"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", latest() + 1).unwrap();
        assert!(apply(&mut c).unwrap_err().contains("newer"));
    }

    /// 0004 rebuilds usage_events: rows written under schema 3 keep every column, the indexes
    /// come back, and the rewritten checks still refuse what the old ones refused.
    #[test]
    fn usage_rebuild_keeps_rows_and_checks() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        assert_eq!(apply_up_to(&mut c, 3).unwrap(), vec![1, 2, 3]);
        let tenant = "00000000-0000-0000-0000-000000000000";
        let insert = "INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens,
                output_tokens, estimated_nanos, billed_nanos, cost_source, execution_mode, markup,
                agent_name, created_at)
             VALUES (?1, ?2, ?3, 5, 'gpt-4o', 7, 8, 9, 10, ?4, ?5, 0, 'a', 11)";
        c.execute(
            insert,
            rusqlite::params!["e1", tenant, "x", "pricing", "hosted"],
        )
        .unwrap();
        c.execute(
            insert,
            rusqlite::params!["e2", tenant, "y", "client", "byo_key"],
        )
        .unwrap();
        let before: Vec<String> = dump(&c);
        assert_eq!(apply(&mut c).unwrap(), versions_after(3));
        assert_eq!(dump(&c), before);
        for (source, mode) in [("bogus", "hosted"), ("client", "bogus"), ("", "hosted")] {
            let e = c.execute(insert, rusqlite::params!["e3", tenant, "z", source, mode]);
            assert!(e.is_err(), "{source}/{mode} accepted");
        }
        c.execute(
            insert,
            rusqlite::params!["e3", tenant, "z", "unknown_model", "hosted"],
        )
        .unwrap();
        let dup = c.execute(
            insert,
            rusqlite::params!["e4", tenant, "x", "client", "hosted"],
        );
        assert!(dup.is_err(), "the unique event_id index is back");
        let indexes: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'usage_events'
                   AND name IN ('usage_events_by_time', 'usage_events_by_event_id', 'usage_events_by_job')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
    }

    /// 0005 adds the cache and reasoning counts: events, rollups and prices recorded before it
    /// read 0 (and no cache prices), and nothing else of them changes.
    #[test]
    fn cache_columns_arrive_as_zero_on_existing_rows() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        apply_up_to(&mut c, 4).unwrap();
        let tenant = "00000000-0000-0000-0000-000000000000";
        c.execute(
            "INSERT INTO usage_events (id, tenant_id, ts, model, input_tokens, output_tokens,
                 estimated_nanos, billed_nanos, input_price, output_price, cost_source,
                 execution_mode, markup, created_at)
             VALUES ('e1', ?1, 5, 'gpt-4o', 7, 8, 9, 10, 11, 12, 'pricing', 'hosted', 0, 13)",
            [tenant],
        )
        .unwrap();
        c.execute(
            "INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens,
                 output_tokens, estimated_nanos, billed_nanos) VALUES (?1, 0, '', '', 1, 7, 8, 9, 10)",
            [tenant],
        )
        .unwrap();
        c.execute(
            "INSERT INTO pricing_overrides (model, input_usd_per_million_nanos,
                 output_usd_per_million_nanos, updated_at) VALUES ('m', 1, 2, 3)",
            [],
        )
        .unwrap();
        let before = dump(&c);
        assert_eq!(apply(&mut c).unwrap(), versions_after(4));
        assert_eq!(dump(&c), before);
        let event: (i64, i64, i64, Option<i64>, Option<i64>) = c
            .query_row(
                "SELECT cache_read_tokens, cache_write_tokens, reasoning_tokens, cache_read_price,
                        cache_write_price FROM usage_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(event, (0, 0, 0, None, None));
        let rollup: (i64, i64, i64, i64) = c
            .query_row(
                "SELECT input_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
                 FROM usage_rollups",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(rollup, (7, 0, 0, 0));
        let price: (i64, Option<i64>, Option<i64>) = c
            .query_row(
                "SELECT input_usd_per_million_nanos, cache_read_usd_per_million_nanos,
                        cache_write_usd_per_million_nanos FROM pricing_overrides",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(price, (1, None, None));
        let negative = c.execute("UPDATE usage_events SET cache_read_tokens = -1", []);
        assert!(negative.is_err(), "negative counts are refused");
    }

    fn dump(c: &Connection) -> Vec<String> {
        let mut s = c
            .prepare("SELECT json_array(seq, id, tenant_id, event_id, ts, model, input_tokens, output_tokens, estimated_nanos, billed_nanos, input_price, output_price, cost_source, execution_mode, markup, pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, created_at) FROM usage_events ORDER BY seq")
            .unwrap();
        let rows = s.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn default_tenant_cannot_be_deleted() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c).unwrap();
        let e = c.execute(
            "DELETE FROM tenants WHERE id = '00000000-0000-0000-0000-000000000000'",
            [],
        );
        assert!(e.is_err());
    }
}
