//! Moving one tenant between instances: export to JSON (every tenant-owned row, provider keys
//! still sealed, with the record of the key that sealed them) and import, re-sealing provider
//! keys under the importing instance's key.
use crate::config::Config;
use crate::crypto::{self, KdfParams, KeyRecord, MasterKey};
use crate::db::backup::open_read_only;
use crate::db::{files, migrate};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The tables that belong to a tenant, in an order that satisfies their references.
pub(super) const TENANT_TABLES: &[&str] = &[
    "tenant_users",
    "api_keys",
    "settings_versions",
    "provider_keys",
    "usage_events",
    "usage_rollups",
    "events",
    "agent_preferences",
    "webhook_endpoints",
    "webhook_deliveries",
    "statements",
    "statement_lines",
    "jobs",
];

pub fn write_private(path: &Path, doc: &Value, overwrite: bool) -> Result<(), String> {
    use std::io::Write;
    let mut opts = files::private_options();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        ),
        _ => format!("cannot create {}: {e}", path.display()),
    })?;
    files::make_private(path)?;
    serde_json::to_writer(&mut f, doc)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(f))
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A snapshot is usable when it is an intact tenantry database of a schema this binary knows.
fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => json!({"$base64": B64.encode(b)}),
    }
}

pub(super) fn from_json(v: &Value) -> Result<Sql, String> {
    Ok(match v {
        Value::Null => Sql::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().ok_or("a number out of range")?),
        },
        Value::String(s) => Sql::Text(s.clone()),
        Value::Object(o) => match o.get("$base64").and_then(Value::as_str) {
            Some(b) => Sql::Blob(B64.decode(b).map_err(|_| "bad base64 in the export")?),
            None => return Err("an unexpected object in the export".into()),
        },
        _ => return Err("an unexpected value in the export".into()),
    })
}

fn rows(c: &Connection, sql: &str, id: &str) -> Result<Vec<Value>, String> {
    let mut stmt = c.prepare(sql).map_err(|e| e.to_string())?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut q = stmt.query([id]).map_err(|e| e.to_string())?;
    while let Some(r) = q.next().map_err(|e| e.to_string())? {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(n.clone(), to_json(r.get_ref(i).map_err(|e| e.to_string())?));
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// One tenant and everything it owns, as JSON. Provider keys stay sealed; the salt, parameters
/// and check value of this instance's key travel with them (none of them is secret).
pub fn export_tenant(db: &Path, id_or_slug: &str) -> Result<Value, String> {
    let c = open_read_only(db)?;
    let tenant = rows(
        &c,
        "SELECT * FROM tenants WHERE id = ?1 OR slug = ?1",
        id_or_slug,
    )?
    .into_iter()
    .next()
    .ok_or_else(|| format!("no tenant `{}`", crate::error::clip(id_or_slug)))?;
    let id = tenant["id"].as_str().unwrap_or_default().to_string();
    let mut tables = Map::new();
    for t in TENANT_TABLES {
        let order = export_order(t);
        tables.insert(
            t.to_string(),
            json!(rows(
                &c,
                &format!("SELECT * FROM {t} WHERE tenant_id = ?1{order}"),
                &id
            )?),
        );
    }
    let record = crypto::instance::record(&c)?;
    Ok(json!({
        "format": "tenantry-tenant-export",
        "format_version": 1,
        "schema_version": migrate::current(&c).map_err(|e| e.to_string())?,
        "exported_at": crate::time::rfc3339(chrono::Utc::now().timestamp_micros()),
        "encryption": {
            "salt": record.as_ref().map(|r| crypto::hex(&r.salt)),
            "kdf": record.as_ref().map(|r| r.params.to_string()),
            "check": record.as_ref().map(|r| r.check.clone()),
        },
        "tenant": tenant,
        "tables": tables,
    }))
}

pub struct ImportOptions {
    pub replace: bool,
    pub skip_provider_keys: bool,
}

/// What an import reads from an export document, checked the same way on both stores.
pub(super) struct Doc<'a> {
    pub tenant: &'a Map<String, Value>,
    pub id: String,
    pub tables: &'a Map<String, Value>,
}

/// Checks the document's format and schema version (against `latest`, this binary's schema
/// on the importing store) and finds its tenant and tables.
pub(super) fn parse_doc(doc: &Value, latest: i64) -> Result<Doc<'_>, String> {
    check_format(doc, latest)?;
    Ok(Doc {
        tenant: doc["tenant"]
            .as_object()
            .ok_or("the export has no tenant")?,
        id: doc["tenant"]
            .get("id")
            .and_then(Value::as_str)
            .ok_or("the export's tenant has no id")?
            .to_string(),
        tables: doc["tables"]
            .as_object()
            .ok_or("the export has no tables")?,
    })
}

/// The document's format and schema version, checked before anything else is looked at.
fn check_format(doc: &Value, latest: i64) -> Result<(), String> {
    if doc["format"] != "tenantry-tenant-export" || doc["format_version"] != 1 {
        return Err("not a tenantry tenant export".into());
    }
    if doc["schema_version"].as_i64().unwrap_or(i64::MAX) > latest {
        return Err("the export comes from a newer tenantry; upgrade this one first".into());
    }
    Ok(())
}

/// The exporter's key, when the export holds sealed values and they are to be imported.
pub(super) fn their_key(
    config: &Config,
    doc: &Value,
    d: &Doc<'_>,
    opts: &ImportOptions,
) -> Result<Option<MasterKey>, String> {
    // Webhook secrets are sealed like provider keys, and skipped with them.
    let sealed: usize = ["provider_keys", "webhook_endpoints"]
        .iter()
        .map(|t| {
            d.tables
                .get(*t)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    if sealed > 0 && !opts.skip_provider_keys {
        Ok(Some(exporter_key(config, &doc["encryption"])?))
    } else {
        Ok(None)
    }
}

pub(super) fn already_exists(id: &str) -> String {
    format!("tenant {id} already exists here; pass --replace to replace it")
}

pub(super) fn slug_clash(slug: &str) -> String {
    format!("another tenant here already has the slug `{slug}`")
}

/// `d`'s rows of `table`, in order, as they are to be inserted: without `seq` (renumbered by
/// the importing store; order is kept by inserting in order), sealed values sealed again under
/// `ours`, and without sealed rows when `theirs` is `None` (skipped).
pub(super) fn rows_to_import(
    d: &Doc<'_>,
    table: &str,
    theirs: Option<&MasterKey>,
    ours: &MasterKey,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut out = Vec::new();
    for row in d
        .tables
        .get(table)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut row = row.as_object().cloned().ok_or("a row is not an object")?;
        row.remove("seq");
        if table == "provider_keys" {
            let Some(theirs) = theirs else { continue };
            let provider = row
                .get("provider")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let Sql::Blob(ct) = from_json(&row["ciphertext"])? else {
                return Err("a provider key is not sealed bytes".into());
            };
            let tid = uuid::Uuid::parse_str(&d.id).map_err(|e| e.to_string())?;
            let resealed = crypto::reseal(theirs, ours, &ct, tid, &provider)
                .map_err(|e| format!("the {provider} key does not open: {e}"))?;
            row.insert(
                "ciphertext".into(),
                json!({"$base64": B64.encode(resealed)}),
            );
        }
        if table == "webhook_endpoints" || table == "webhook_deliveries" {
            let Some(theirs) = theirs else { continue };
            if table == "webhook_endpoints" {
                reseal_webhook(theirs, ours, &d.id, &mut row)?;
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// Imports an export into this instance's database (server stopped). Provider keys are opened
/// with the exporter's key, derived from this instance's `ENCRYPTION_KEY` and the exporter's salt,
/// and sealed again under this instance's key; a different `ENCRYPTION_KEY` is refused, unless
/// told to import without provider keys.
pub fn import_tenant(config: &Config, doc: &Value, opts: &ImportOptions) -> Result<String, String> {
    check_format(doc, migrate::latest())?;
    // Into an instance that exists: importing must not be what creates one (a failed import
    // would leave a data directory, a database and a key file behind).
    if !config.db_path().exists() {
        return Err(format!(
            "no database at {}; start tenantry once (or run tenantry migrate) first",
            config.db_path().display()
        ));
    }
    let _lock = crate::db::lock::CommandLock::acquire(&config.data_dir)?;
    let db = crate::db::Db::open(&config.db_path(), config.sync_full)?;
    let mut c = db.conn().map_err(|e| e.to_string())?;
    let (ours, _) = crate::crypto::instance::master_key(config, &mut c)?;
    let d = parse_doc(doc, migrate::latest())?;
    let id = d.id.clone();
    let theirs = their_key(config, doc, &d, opts)?;
    let tx = c.transaction().map_err(|e| e.to_string())?;
    let exists: bool = tx
        .query_row("SELECT count(*) FROM tenants WHERE id = ?1", [&id], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| e.to_string())?
        > 0;
    if exists && !opts.replace {
        return Err(already_exists(&id));
    }
    if exists {
        if id == crate::tenancy::DEFAULT_TENANT_ID.to_string() {
            // The default tenant's row cannot be deleted; what it owns is replaced.
            for t in TENANT_TABLES.iter().rev() {
                tx.execute(&format!("DELETE FROM {t} WHERE tenant_id = ?1"), [&id])
                    .map_err(|e| e.to_string())?;
            }
        } else {
            tx.execute("DELETE FROM tenants WHERE id = ?1", [&id])
                .map_err(|e| e.to_string())?;
        }
    }
    let slug = d
        .tenant
        .get("slug")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let clash: Option<String> = tx
        .query_row(
            "SELECT id FROM tenants WHERE slug = ?1 AND id <> ?2",
            params![slug, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if clash.is_some() {
        return Err(slug_clash(slug));
    }
    insert_row(
        &tx,
        "tenants",
        d.tenant,
        exists && id == crate::tenancy::DEFAULT_TENANT_ID.to_string(),
    )?;
    for t in TENANT_TABLES {
        for row in rows_to_import(&d, t, theirs.as_ref(), &ours)? {
            insert_row(&tx, t, &row, false)?;
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(id)
}

/// Seals an imported endpoint's secrets again under this instance's key.
fn reseal_webhook(
    theirs: &MasterKey,
    ours: &MasterKey,
    tenant: &str,
    row: &mut Map<String, Value>,
) -> Result<(), String> {
    let endpoint = row
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let bind = crate::webhooks::service::binding(&endpoint);
    let tid = uuid::Uuid::parse_str(tenant).map_err(|e| e.to_string())?;
    for col in ["secret", "previous_secret"] {
        let Sql::Blob(ct) = from_json(&row.get(col).cloned().unwrap_or(Value::Null))? else {
            continue;
        };
        let resealed = crypto::reseal(theirs, ours, &ct, tid, &bind)
            .map_err(|e| format!("the secret of webhook {endpoint} does not open: {e}"))?;
        row.insert(col.into(), json!({"$base64": B64.encode(resealed)}));
    }
    Ok(())
}

fn exporter_key(config: &Config, enc: &Value) -> Result<MasterKey, String> {
    let refuse = || {
        "the export's provider keys were sealed under a different ENCRYPTION_KEY; set that key, \
         or pass --skip-provider-keys to import without them"
            .to_string()
    };
    let record = KeyRecord {
        salt: enc["salt"]
            .as_str()
            .and_then(crypto::unhex)
            .ok_or("the export's encryption salt is missing or damaged")?,
        params: KdfParams::parse(enc["kdf"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?,
        check: enc["check"].as_str().unwrap_or_default().to_string(),
    };
    let secret = crypto::instance::configured_secret(config).ok_or_else(refuse)?;
    record.open_with(secret.expose())?.ok_or_else(refuse)
}

fn insert_row(
    c: &Connection,
    table: &str,
    row: &Map<String, Value>,
    skip: bool,
) -> Result<(), String> {
    if skip {
        return Ok(());
    }
    let cols: Vec<&String> = row.keys().collect();
    let values = row.values().map(from_json).collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        cols.iter()
            .map(|c| format!("\"{}\"", c.replace('"', "")))
            .collect::<Vec<_>>()
            .join(", "),
        (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    c.execute(&sql, rusqlite::params_from_iter(values))
        .map_err(|e| format!("cannot import a row of {table}: {e}"))?;
    Ok(())
}

/// The order a tenant table's rows are exported in: by `seq` where rows have one, so an import
/// keeps their order (and the keysets over them) on either store.
pub(super) fn export_order(table: &str) -> &'static str {
    match table {
        "usage_events" | "events" | "webhook_deliveries" | "jobs" => " ORDER BY seq",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The export's table list is written by hand (in an order that satisfies references), so a
    /// new tenant-owned table must be added to it: this fails until it is.
    #[test]
    fn every_tenant_owned_table_of_the_schema_is_exported() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate::apply(&mut c).unwrap();
        let mut stmt = c
            .prepare(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND p.name = 'tenant_id' ORDER BY m.name",
            )
            .unwrap();
        let mut owned: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        owned.sort();
        let mut listed: Vec<String> = TENANT_TABLES.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(listed, owned);
    }
}
