//! The schema as each store's catalog describes it, in one shape, so the two can be compared:
//! the parity test and `tenantry verify` on PostgreSQL expect PostgreSQL's tables, columns,
//! keys, indexes, foreign keys and number of CHECK constraints to be SQLite's at the same
//! version, under the type mapping of migrations/postgres/0010_baseline.sql. CHECKs are counted,
//! not compared as text: the two dialects spell the same rule differently.
use super::describe;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// One table: its columns in order, primary key, indexes and foreign keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// (name, type, not null): types as `integer`, `text`, `blob` or `uuid`.
    pub columns: Vec<(String, String, bool)>,
    pub primary_key: Vec<String>,
    /// By name: (columns, unique, partial).
    pub indexes: BTreeMap<String, (Vec<String>, bool, bool)>,
    /// (columns, referenced table, referenced columns, on delete).
    pub foreign_keys: Vec<(Vec<String>, String, Vec<String>, String)>,
    /// How many CHECK constraints the table has.
    pub checks: usize,
}

pub type Schema = BTreeMap<String, Table>;

/// Tables that only PostgreSQL has: its migration bookkeeping and what replicas share (0011).
pub const POSTGRES_ONLY: &[&str] = &[
    "schema_migrations",
    "usage_totals",
    "writer_commits",
    "rate_buckets",
    "queue_tenants",
    "leader",
    "replicas",
];

/// SQLite's schema, read from an open connection.
pub fn sqlite(c: &rusqlite::Connection) -> rusqlite::Result<Schema> {
    let names: Vec<(String, String)> = c
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Schema::new();
    for (name, sql) in names {
        let mut t = Table {
            checks: sql.to_ascii_uppercase().matches("CHECK (").count(),
            ..Table::default()
        };
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut s = c.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")?;
        let mut rows = s.query([&name])?;
        while let Some(r) = rows.next()? {
            let (col, ty, not_null, k): (String, String, bool, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            // A primary key is NOT NULL on PostgreSQL whatever it says; SQLite's rowid alias too.
            t.columns
                .push((col.clone(), ty.to_ascii_lowercase(), not_null || k > 0));
            if k > 0 {
                pk.push((k, col));
            }
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        let mut s = c.prepare(
            "SELECT name, \"unique\", partial, origin FROM pragma_index_list(?1) ORDER BY name",
        )?;
        let list: Vec<(String, bool, bool, String)> = s
            .query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (index, unique, partial, origin) in list {
            let mut s = c.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
            let cols: Vec<String> = s
                .query_map([&index], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            match origin.as_str() {
                "pk" => {}
                // An inline UNIQUE: PostgreSQL names it <table>_<column>_key.
                "u" => {
                    t.indexes.insert(
                        format!("{name}_{}_key", cols.join("_")),
                        (cols, true, false),
                    );
                }
                _ => {
                    t.indexes.insert(index, (cols, unique, partial));
                }
            }
        }
        let mut s = c.prepare(
            "SELECT id, \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)
             ORDER BY id, seq",
        )?;
        let fks: Vec<(i64, String, String, String, String)> = s
            .query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut by_id: BTreeMap<i64, (Vec<String>, String, Vec<String>, String)> = BTreeMap::new();
        for (id, from, table, to, on_delete) in fks {
            let e = by_id
                .entry(id)
                .or_insert_with(|| (vec![], table, vec![], on_delete.to_ascii_lowercase()));
            e.0.push(from);
            e.2.push(to);
        }
        t.foreign_keys = by_id.into_values().collect();
        t.foreign_keys.sort();
        out.insert(name, t);
    }
    Ok(out)
}

/// PostgreSQL's schema (the `public` schema of the connected database).
pub async fn postgres(c: &Client) -> Result<Schema, String> {
    let fail = |e: tokio_postgres::Error| format!("cannot read the schema: {}", describe(&e));
    let mut out = Schema::new();
    for r in c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'NO'
             FROM information_schema.columns WHERE table_schema = 'public'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(fail)?
    {
        let ty = match r.get::<_, String>(2).as_str() {
            "bigint" => "integer",
            "bytea" => "blob",
            "uuid" => "uuid",
            "text" => "text",
            other => other,
        }
        .to_string();
        out.entry(r.get(0))
            .or_default()
            .columns
            .push((r.get(1), ty, r.get(3)));
    }
    // Indexes with their columns in key order; the primary key's index is the primary key.
    for r in c
        .query(
            "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indisprimary,
                    ix.indpred IS NOT NULL,
                    array(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n
                          ORDER BY k.o)
             FROM pg_index ix
             JOIN pg_class t ON t.oid = ix.indrelid
             JOIN pg_class i ON i.oid = ix.indexrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .map_err(fail)?
    {
        let t = out.entry(r.get(0)).or_default();
        let cols: Vec<String> = r.get(5);
        if r.get::<_, bool>(3) {
            t.primary_key = cols;
        } else {
            t.indexes.insert(r.get(1), (cols, r.get(2), r.get(4)));
        }
    }
    for r in c
        .query(
            "SELECT t.relname::text, f.relname::text,
                    array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                          ORDER BY k.o),
                    array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                          ORDER BY k.o),
                    con.confdeltype::text
             FROM pg_constraint con
             JOIN pg_class t ON t.oid = con.conrelid
             JOIN pg_class f ON f.oid = con.confrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE con.contype = 'f' AND n.nspname = 'public'",
            &[],
        )
        .await
        .map_err(fail)?
    {
        let on_delete = match r.get::<_, String>(4).as_str() {
            "c" => "cascade",
            "n" => "set null",
            "r" => "restrict",
            "d" => "set default",
            _ => "no action",
        }
        .to_string();
        out.entry(r.get(0)).or_default().foreign_keys.push((
            r.get(2),
            r.get(1),
            r.get(3),
            on_delete,
        ));
    }
    for r in c
        .query(
            "SELECT t.relname::text, count(*) FROM pg_constraint con
             JOIN pg_class t ON t.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE con.contype = 'c' AND n.nspname = 'public' GROUP BY 1",
            &[],
        )
        .await
        .map_err(fail)?
    {
        out.entry(r.get(0)).or_default().checks = r.get::<_, i64>(1) as usize;
    }
    for t in out.values_mut() {
        t.foreign_keys.sort();
    }
    Ok(out)
}

/// How `pg` differs from `sqlite`, one line per difference (empty: they agree). A SQLite `text`
/// column may be `uuid` on PostgreSQL (the ids tenantry generates).
pub fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for name in sqlite.keys().filter(|n| !pg.contains_key(*n)) {
        out.push(format!("table {name} is missing on PostgreSQL"));
    }
    for name in pg.keys() {
        if !sqlite.contains_key(name) && !POSTGRES_ONLY.contains(&name.as_str()) {
            out.push(format!("table {name} exists only on PostgreSQL"));
        }
    }
    for (name, s) in sqlite {
        let Some(p) = pg.get(name) else { continue };
        let s_cols: Vec<_> = s.columns.iter().map(|c| &c.0).collect();
        let p_cols: Vec<_> = p.columns.iter().map(|c| &c.0).collect();
        if s_cols != p_cols {
            out.push(format!(
                "{name}: columns {s_cols:?} on SQLite, {p_cols:?} on PostgreSQL"
            ));
        }
        for (sc, pc) in s.columns.iter().zip(&p.columns).filter(|(a, b)| a.0 == b.0) {
            let same_type = sc.1 == pc.1 || (sc.1 == "text" && pc.1 == "uuid");
            if !same_type || sc.2 != pc.2 {
                out.push(format!(
                    "{name}.{}: {} {} on SQLite, {} {} on PostgreSQL",
                    sc.0,
                    sc.1,
                    if sc.2 { "not null" } else { "null" },
                    pc.1,
                    if pc.2 { "not null" } else { "null" },
                ));
            }
        }
        if s.primary_key != p.primary_key {
            out.push(format!(
                "{name}: primary key {:?} on SQLite, {:?} on PostgreSQL",
                s.primary_key, p.primary_key
            ));
        }
        if s.indexes != p.indexes {
            out.push(format!(
                "{name}: indexes {:?} on SQLite, {:?} on PostgreSQL",
                s.indexes, p.indexes
            ));
        }
        if s.checks != p.checks {
            out.push(format!(
                "{name}: {} CHECK constraints on SQLite, {} on PostgreSQL",
                s.checks, p.checks
            ));
        }
        if s.foreign_keys != p.foreign_keys {
            out.push(format!(
                "{name}: foreign keys {:?} on SQLite, {:?} on PostgreSQL",
                s.foreign_keys, p.foreign_keys
            ));
        }
    }
    out
}

/// The schema this binary gives a new SQLite database: what PostgreSQL's must match.
pub fn expected() -> Result<Schema, String> {
    let mut c = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    crate::db::migrate::apply(&mut c)?;
    sqlite(&c).map_err(|e| format!("cannot read SQLite's schema: {e}"))
}
