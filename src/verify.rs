//! `tenantry verify`: an operator's proof that the database is intact and that nothing is
//! cross-wired between tenants. It only reads, so it runs beside a live server.
use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::db::migrate;
use crate::usage::rollup::{DIMS, JOB_DIM, MODE_DIMS};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;

pub mod pg;

pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000000";

/// A line of the report names at most this many problems, then counts the rest.
const SHOWN: usize = 10;

/// One check and what it found wrong; no problems means it passed.
pub struct Check {
    pub name: &'static str,
    pub problems: Vec<String>,
    /// Said instead of `ok` by a check that passed without running (PostgreSQL's `integrity`
    /// without `amcheck`).
    pub note: Option<String>,
}

impl Check {
    fn new(name: &'static str, found: Result<Vec<String>, String>) -> Check {
        let problems = found.unwrap_or_else(|e| vec![format!("cannot check: {e}")]);
        Check {
            name,
            problems,
            note: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// `name: ok`, or `name: ` and the problems on one line.
    pub fn line(&self) -> String {
        if self.passed() {
            return format!("{}: {}", self.name, self.note.as_deref().unwrap_or("ok"));
        }
        let mut text = self.problems[..self.problems.len().min(SHOWN)].join("; ");
        if self.problems.len() > SHOWN {
            text.push_str(&format!("; and {} more", self.problems.len() - SHOWN));
        }
        format!("{}: {text}", self.name)
    }
}

/// Opens the database read-only. It creates no data directory and takes no lock; SQLite may
/// leave empty `-wal` and `-shm` files beside the database (with the database file's mode), as
/// any reader of a WAL database does.
fn open(path: &Path) -> Result<Connection, String> {
    if !path.is_file() {
        return Err(format!("no database at {}", path.display()));
    }
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let version = migrate::current(&c)
        .map_err(|e| format!("{} is not a readable SQLite database ({e})", path.display()))?;
    if version > migrate::latest() {
        return Err(format!(
            "{} has schema version {version}, newer than this binary knows ({}); upgrade tenantry first",
            path.display(),
            migrate::latest()
        ));
    }
    if version < migrate::latest() {
        return Err(format!(
            "{} is at schema version {version}, older than this binary's ({}); run `tenantry migrate` first",
            path.display(),
            migrate::latest()
        ));
    }
    Ok(c)
}

/// Runs every check in one read transaction, so all of them see the same committed state.
pub fn run(config: &Config) -> Result<Vec<Check>, String> {
    let mut c = open(&config.db_path())?;
    let tx = c.transaction().map_err(|e| e.to_string())?;
    Ok(vec![
        Check::new("integrity", integrity(&tx)),
        Check::new("foreign keys", foreign_keys(&tx)),
        Check::new("tenant ownership", ownership(&tx)),
        Check::new("default tenant", default_tenant(&tx)),
        Check::new("usage rollups", rollups(&tx)),
        Check::new("provider keys", provider_keys(config, &tx)),
        Check::new("webhook secrets", webhook_secrets(config, &tx)),
    ])
}

fn rows(n: i64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

fn err(e: rusqlite::Error) -> String {
    e.to_string()
}

fn integrity(c: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = c.prepare("PRAGMA integrity_check").map_err(err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(err)?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

fn foreign_keys(c: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = c
        .prepare(
            "SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check
             GROUP BY \"table\", parent ORDER BY \"table\", parent",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{} of table {} refer to missing rows of {}",
                rows(r.get(2)?),
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(err)?;
    Ok(rows)
}

/// Every table with a `tenant_id` column, read from the schema so a new table is never missed.
fn tenant_tables(c: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = c
        .prepare(
            "SELECT m.name FROM sqlite_master AS m, pragma_table_info(m.name) AS col
             WHERE m.type = 'table' AND col.name = 'tenant_id' ORDER BY m.name",
        )
        .map_err(err)?;
    let names = stmt
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
        .map_err(err)?;
    Ok(names)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn ownership(c: &Connection) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for table in tenant_tables(c)? {
        let sql = format!(
            "SELECT tenant_id, count(*) FROM {} WHERE tenant_id NOT IN (SELECT id FROM tenants)
             GROUP BY tenant_id ORDER BY tenant_id",
            quoted(&table)
        );
        let mut stmt = c.prepare(&sql).map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "table {table} has {} of tenant {}, which does not exist",
                    rows(r.get(1)?),
                    r.get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "NULL".into())
                ))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(err)?;
        problems.extend(rows);
    }
    Ok(problems)
}

fn default_tenant(c: &Connection) -> Result<Vec<String>, String> {
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM tenants WHERE id = ?1",
            [DEFAULT_TENANT],
            |r| r.get(0),
        )
        .map_err(err)?;
    Ok(if n == 1 {
        vec![]
    } else {
        vec![format!(
            "the default tenant {DEFAULT_TENANT} is missing from table tenants"
        )]
    })
}

fn columns(c: &Connection, table: &str) -> Result<Vec<String>, String> {
    let mut stmt = c
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(err)?;
    let names = stmt
        .query_map([table], |r| r.get(0))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
        .map_err(err)?;
    Ok(names)
}

/// (tenant, day, dim, key) -> the amounts, in the order of the rollup's amount columns.
type Sums = BTreeMap<(String, i64, String, String), Vec<i64>>;

/// UTC days since the epoch of a raw event's `ts`, rounding down before 1970 as
/// `rollup::day_of` does (the same SQL on both stores).
pub(crate) const DAY_OF_TS: &str =
    "CASE WHEN ts >= 0 THEN ts / 86400000000 ELSE (ts + 1) / 86400000000 - 1 END";

/// What each rollup amount is checked against, as one SQL select list over raw events
/// (`events` counts the rows, every other amount sums the raw column of its name, each sum
/// followed by `cast`), and a problem for each amount without a raw column to check it by.
pub(crate) fn rollup_sums(amounts: &[String], raw: &[String], cast: &str) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    let sums: Vec<String> = amounts
        .iter()
        .map(|a| {
            if a == "events" {
                "count(*)".to_string()
            } else if raw.contains(a) {
                format!("sum({}){cast}", quoted(a))
            } else {
                problems.push(format!(
                    "usage_rollups.{a} has no column of that name in usage_events to check it against"
                ));
                format!("0{cast}")
            }
        })
        .collect();
    (sums.join(", "), problems)
}

/// Each tenant's rollups must equal what its raw events add up to, in every dimension, on
/// every day usage retention has not reached (`usage::retention::RETAINED_FROM_DAY`). The
/// amount columns are read from the rollup table, so a column added to it is checked too:
/// `events` counts the raw rows, every other one sums the raw column of the same name.
fn rollups(c: &Connection) -> Result<Vec<String>, String> {
    let raw_columns = columns(c, "usage_events")?;
    let amounts: Vec<String> = columns(c, "usage_rollups")?
        .into_iter()
        .filter(|n| !["tenant_id", "day", "dim", "key"].contains(&n.as_str()))
        .collect();
    let (sums, mut problems) = rollup_sums(&amounts, &raw_columns, "");
    let day = DAY_OF_TS;
    let mut raw = Sums::new();
    // (dim, key, which events): the total, one row per value of each dimension, and billing's
    // per execution mode dimensions keyed by model.
    // (dim, day, key, which events): the total, one row per value of each dimension, billing's
    // per execution mode dimensions keyed by model, and each job's all-time row (day 0).
    let row = |dim: &str, day: &str, key: String, only: &str| {
        (dim.to_string(), day.to_string(), key, only.to_string())
    };
    let mut groups = vec![row("", day, "''".into(), "1")];
    groups.extend(
        DIMS.iter()
            .map(|d| row(d, day, format!("coalesce({}, '')", quoted(d)), "1")),
    );
    groups.extend(MODE_DIMS.iter().map(|(d, mode)| {
        let only = format!("execution_mode = '{}'", mode.as_str());
        row(d, day, "model".into(), &only)
    }));
    groups.push(row(JOB_DIM, "0", "job_id".into(), "job_id IS NOT NULL"));
    for (dim, day, key, only) in &groups {
        let sql = format!(
            "SELECT tenant_id, {day}, {key}, {sums} FROM usage_events WHERE {only} GROUP BY 1, 2, 3"
        );
        read_sums(c, &sql, Some(dim), amounts.len(), &mut raw)?;
    }
    let cols = amounts
        .iter()
        .map(|a| quoted(a))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stored = Sums::new();
    read_sums(
        c,
        &format!("SELECT tenant_id, day, dim, key, {cols} FROM usage_rollups"),
        None,
        amounts.len(),
        &mut stored,
    )?;
    // A rollup row of all zeros says the same as no row.
    stored.retain(|_, v| v.iter().any(|x| *x != 0));
    // Raw events of days before the retention horizon are deleted (or being deleted) while
    // their rollups stay: only days still fully kept can be compared.
    if let Some(first) = crate::usage::retention::retained_from_day(c).map_err(err)? {
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

fn read_sums(
    c: &Connection,
    sql: &str,
    dim: Option<&str>,
    n: usize,
    into: &mut Sums,
) -> Result<(), String> {
    let mut stmt = c.prepare(sql).map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let (tenant, day): (String, i64) = (r.get(0).map_err(err)?, r.get(1).map_err(err)?);
        let (dim, first) = match dim {
            Some(d) => (d.to_string(), 2),
            None => (r.get(2).map_err(err)?, 3),
        };
        let key: String = r.get(first).map_err(err)?;
        let values = (0..n)
            .map(|i| {
                r.get::<_, Option<i64>>(first + 1 + i)
                    .map(|v| v.unwrap_or(0))
            })
            .collect::<rusqlite::Result<Vec<i64>>>()
            .map_err(err)?;
        into.insert((tenant, day, dim, key), values);
    }
    Ok(())
}

fn mismatch(
    (tenant, day, dim, key): &(String, i64, String, String),
    amounts: &[String],
    stored: Option<&Vec<i64>>,
    raw: Option<&Vec<i64>>,
) -> String {
    let zeros = vec![0; amounts.len()];
    let (s, r) = (stored.unwrap_or(&zeros), raw.unwrap_or(&zeros));
    let diffs: Vec<String> = amounts
        .iter()
        .zip(s.iter().zip(r))
        .filter(|(_, (a, b))| a != b)
        .map(|(name, (a, b))| format!("{name} {a} in the rollup, {b} in the events"))
        .collect();
    let dim = if dim.is_empty() { "total" } else { dim };
    format!(
        "tenant {tenant}: table usage_rollups, {} {dim} '{key}': {}",
        crate::usage::rollup::day_label(*day),
        diffs.join(", ")
    )
}

/// Every provider key must open with this instance's key, bound to its own tenant and provider.
/// Whether a sealed secret opens with `key` for `tenant` (as stored) and `bind`: what it was
/// sealed to, so a value moved to another tenant or owner does not.
fn opens(key: &MasterKey, sealed: &[u8], tenant: &str, bind: &str) -> Result<(), String> {
    let id =
        uuid::Uuid::parse_str(tenant).map_err(|_| "the tenant id is not a UUID".to_string())?;
    crypto::open(key, sealed, id, bind)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn provider_keys(config: &Config, c: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = c
        .prepare("SELECT tenant_id, provider, ciphertext FROM provider_keys ORDER BY 1, 2")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(err)?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let key: MasterKey = match crate::crypto::instance::existing_master_key(config, c)? {
        Some(k) => k,
        None => return Err("provider keys are stored but no encryption key is installed".into()),
    };
    let mut problems = Vec::new();
    for (tenant, provider, sealed) in rows {
        if let Err(e) = opens(&key, &sealed, &tenant, &provider) {
            problems.push(format!(
                "tenant {tenant}: table provider_keys, the {provider} key does not open ({e})"
            ));
        }
    }
    Ok(problems)
}

/// Every webhook secret (current and rotated-out) opens with this instance's key, bound to its
/// tenant and endpoint.
fn webhook_secrets(config: &Config, c: &Connection) -> Result<Vec<String>, String> {
    let rows = crate::webhooks::store::all_sealed(c).map_err(err)?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let Some(key) = crate::crypto::instance::existing_master_key(config, c)? else {
        return Err("webhook secrets are stored but no encryption key is installed".into());
    };
    let mut problems = Vec::new();
    for (endpoint, tenant, column, sealed) in rows {
        let bind = crate::webhooks::service::binding(&endpoint);
        if let Err(e) = opens(&key, &sealed, &tenant, &bind) {
            problems.push(format!(
                "tenant {tenant}: webhook {endpoint}, its {column} does not open ({e})"
            ));
        }
    }
    Ok(problems)
}
