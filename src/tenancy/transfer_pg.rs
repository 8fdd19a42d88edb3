//! `tenantry tenant export` and `import` on PostgreSQL (TENANTRY_DATABASE_URL): the same
//! document as SQLite's (`transfer`), so a tenant moves between stores either way. The export
//! reads one snapshot; the import is one transaction (all or nothing) and, since replicas keep
//! serving meanwhile, tells their caches what it changed (`db::pg::notify`) when it commits.
use super::transfer::{
    already_exists, from_json, parse_doc, rows_to_import, slug_clash, their_key, ImportOptions,
    TENANT_TABLES,
};
use crate::config::Config;
use crate::crypto;
use crate::db::pg::notify::{notify, Invalidation};
use crate::db::pg::{self, describe, Pg};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rusqlite::types::Value as Sql;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row, Statement, Transaction};
use uuid::Uuid;

fn fail(what: &str) -> impl Fn(tokio_postgres::Error) -> String + '_ {
    move |e| format!("{what}: {}", describe(&e))
}

/// A connection to a database tenantry has migrated; importing or exporting never migrates.
async fn connect(url: &str) -> Result<pg::Client, String> {
    let c = Pg::new(url, 1)?.client().await?;
    if pg::migrate::current(&c).await? == 0 {
        return Err(
            "the PostgreSQL database has no tenantry schema; start tenantry once (or run \
             tenantry migrate) first"
                .into(),
        );
    }
    Ok(c)
}

/// One column of a row as the export writes it: what SQLite's `to_json` gives for the same
/// value (ids as their text, integers as numbers, bytes as `{"$base64": ...}`).
fn cell(r: &Row, i: usize) -> Result<Value, String> {
    let col = &r.columns()[i];
    let bad = |e: tokio_postgres::Error| format!("cannot read {}: {}", col.name(), describe(&e));
    Ok(match *col.type_() {
        Type::INT8 => json!(r.try_get::<_, Option<i64>>(i).map_err(bad)?),
        Type::TEXT => json!(r.try_get::<_, Option<String>>(i).map_err(bad)?),
        Type::UUID => json!(r
            .try_get::<_, Option<Uuid>>(i)
            .map_err(bad)?
            .map(|u| u.to_string())),
        Type::BYTEA => match r.try_get::<_, Option<Vec<u8>>>(i).map_err(bad)? {
            Some(b) => json!({"$base64": B64.encode(b)}),
            None => Value::Null,
        },
        ref other => {
            return Err(format!(
                "column {} has a type the export does not know ({other})",
                col.name()
            ))
        }
    })
}

async fn rows(c: &impl GenericClient, sql: &str, key: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for r in c.query(sql, &[&key]).await.map_err(fail("cannot read"))? {
        let mut m = Map::new();
        for (i, col) in r.columns().iter().enumerate() {
            m.insert(col.name().to_string(), cell(&r, i)?);
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// `transfer::export_tenant` on PostgreSQL, in one read-only snapshot.
pub async fn export_tenant(url: &str, id_or_slug: &str) -> Result<Value, String> {
    let mut c = connect(url).await?;
    let version = pg::migrate::current(&c).await?;
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(fail("cannot begin a transaction"))?;
    let tenant = rows(
        &*tx,
        "SELECT * FROM tenants WHERE id::text = $1 OR slug = $1",
        id_or_slug,
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| format!("no tenant `{}`", crate::error::clip(id_or_slug)))?;
    let id = tenant["id"].as_str().unwrap_or_default().to_string();
    let mut tables = Map::new();
    for t in TENANT_TABLES {
        let order = super::transfer::export_order(t);
        let sql = format!("SELECT * FROM {t} WHERE tenant_id = $1::text::uuid{order}");
        tables.insert(t.to_string(), json!(rows(&*tx, &sql, &id).await?));
    }
    let record = crypto::instance::record_pg(&*tx).await?;
    tx.commit().await.map_err(fail("cannot end the snapshot"))?;
    Ok(json!({
        "format": "tenantry-tenant-export",
        "format_version": 1,
        "schema_version": version,
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

/// A JSON value of the export bound as the type PostgreSQL expects for its column.
fn bind(v: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    let sql = from_json(v)?;
    Ok(match (sql, ty) {
        (Sql::Null, &Type::INT8) => Box::new(None::<i64>),
        (Sql::Null, &Type::UUID) => Box::new(None::<Uuid>),
        (Sql::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
        (Sql::Null, _) => Box::new(None::<String>),
        (Sql::Integer(i), &Type::INT8) => Box::new(i),
        (Sql::Text(s), &Type::UUID) => {
            Box::new(Uuid::parse_str(&s).map_err(|_| "an id that is not a UUID".to_string())?)
        }
        (Sql::Text(s), &Type::TEXT) => Box::new(s),
        (Sql::Blob(b), &Type::BYTEA) => Box::new(b),
        _ => return Err(format!("a value that is not a {ty}")),
    })
}

/// Inserts rows, preparing one statement per table and column list.
#[derive(Default)]
struct Inserts(HashMap<String, Statement>);

impl Inserts {
    async fn insert(
        &mut self,
        tx: &Transaction<'_>,
        table: &str,
        row: &Map<String, Value>,
    ) -> Result<(), String> {
        let cols: Vec<String> = row
            .keys()
            .map(|c| format!("\"{}\"", c.replace('"', "")))
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            cols.join(", "),
            (1..=cols.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let refuse = |e: String| format!("cannot import a row of {table}: {e}");
        if !self.0.contains_key(&sql) {
            let st = tx.prepare(&sql).await.map_err(|e| refuse(describe(&e)))?;
            self.0.insert(sql.clone(), st);
        }
        let st = &self.0[&sql];
        let values = row
            .values()
            .zip(st.params())
            .map(|(v, ty)| bind(v, ty))
            .collect::<Result<Vec<_>, _>>()
            .map_err(refuse)?;
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(st, &params)
            .await
            .map_err(|e| refuse(describe(&e)))?;
        Ok(())
    }
}

/// The ids of `sql`'s first column for the tenant, as text.
async fn ids(tx: &Transaction<'_>, sql: &str, tenant: Uuid) -> Result<Vec<Row>, String> {
    tx.query(sql, &[&tenant])
        .await
        .map_err(fail("cannot read the tenant"))
}

/// `transfer::import_tenant` on PostgreSQL, beside running replicas: the same checks and
/// answers, one transaction, and the notifications that make every replica's caches reload the
/// tenant, its settings, its members and its keys (the replaced ones and the imported ones).
pub async fn import_tenant(
    config: &Config,
    url: &str,
    doc: &Value,
    opts: &ImportOptions,
) -> Result<String, String> {
    let d = parse_doc(doc, pg::migrate::latest())?;
    let mut c = connect(url).await?;
    let ours = {
        // As at start-up: under the advisory lock, so a database without a key record gets one.
        let tx = c.transaction().await.map_err(fail("cannot begin"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&pg::migrate::LOCK])
            .await
            .map_err(fail("cannot lock"))?;
        let key = crypto::instance::master_key_pg(config, &tx).await?;
        tx.commit().await.map_err(fail("cannot commit"))?;
        key
    };
    let theirs = their_key(config, doc, &d, opts)?;
    let id = d.id.clone();
    let tenant = Uuid::parse_str(&id).map_err(|_| "the export's tenant id is not a UUID")?;
    let is_default = tenant == super::DEFAULT_TENANT_ID.as_uuid();
    let tx = c.transaction().await.map_err(fail("cannot begin"))?;
    // The usage writer's lock order: the totals row before the tenant's.
    let totals = ids(
        &tx,
        "SELECT version FROM usage_totals WHERE tenant_id = $1 FOR UPDATE",
        tenant,
    )
    .await?;
    let exists = !ids(
        &tx,
        "SELECT id FROM tenants WHERE id = $1 FOR UPDATE",
        tenant,
    )
    .await?
    .is_empty();
    if exists && !opts.replace {
        return Err(already_exists(&id));
    }
    let mut changed = vec![Invalidation::Tenant(tenant), Invalidation::Settings(tenant)];
    if exists {
        // What the replaced tenant had: each replica drops what the import does not bring back.
        for r in ids(&tx, "SELECT id FROM api_keys WHERE tenant_id = $1", tenant).await? {
            changed.push(Invalidation::Key(r.get(0)));
        }
        for r in ids(
            &tx,
            "SELECT user_id FROM tenant_users WHERE tenant_id = $1",
            tenant,
        )
        .await?
        {
            changed.push(Invalidation::Member(tenant, r.get(0)));
        }
        let sql = if is_default {
            // The default tenant's row cannot be deleted; what it owns is replaced.
            let mut tables: Vec<&str> = TENANT_TABLES.iter().rev().copied().collect();
            tables.extend(["usage_totals", "queue_tenants", "rate_buckets"]);
            tables
                .iter()
                .map(|t| format!("DELETE FROM {t} WHERE tenant_id = $1;"))
                .collect()
        } else {
            // Its usage totals and queue rows go by cascade; the rate bucket has no key.
            vec![
                "DELETE FROM tenants WHERE id = $1;".to_string(),
                "DELETE FROM rate_buckets WHERE tenant_id = $1;".to_string(),
            ]
        };
        for s in sql {
            tx.execute(s.as_str(), &[&tenant])
                .await
                .map_err(fail("cannot replace the tenant"))?;
        }
    }
    let slug = d
        .tenant
        .get("slug")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let clash = tx
        .query_opt(
            "SELECT 1 FROM tenants WHERE slug = $1 AND id <> $2",
            &[&slug, &tenant],
        )
        .await
        .map_err(fail("cannot read the tenants"))?;
    if clash.is_some() {
        return Err(slug_clash(slug));
    }
    let mut inserts = Inserts::default();
    if !(exists && is_default) {
        // A tenant created by another replica since the check: the same answers.
        if let Err(e) = inserts.insert(&tx, "tenants", d.tenant).await {
            return Err(match e.contains("(23505)") {
                true if e.contains("slug") => slug_clash(slug),
                true => already_exists(&id),
                false => e,
            });
        }
    }
    for t in TENANT_TABLES {
        for row in rows_to_import(&d, t, theirs.as_ref(), &ours)? {
            if *t == "api_keys" {
                if let Some(k) = row.get("id").and_then(Value::as_str) {
                    changed.extend(Uuid::parse_str(k).ok().map(Invalidation::Key));
                }
            }
            if *t == "tenant_users" {
                if let Some(u) = row.get("user_id").and_then(Value::as_str) {
                    changed.push(Invalidation::Member(tenant, u.to_string()));
                }
            }
            inserts.insert(&tx, t, &row).await?;
        }
    }
    // The usage writers' shared totals: the imported rollups' all-time sums, at a version no
    // replica has seen for this tenant, so each re-reads before it adds.
    let version = totals.first().map_or(0, |r| r.get::<_, i64>(0)) + 1;
    let sums = crate::usage::pg_store::SUMS
        .split(", ")
        .map(|c| format!("coalesce(sum({c}), 0)::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!(
            "INSERT INTO usage_totals (tenant_id, version, {}) SELECT $1, $2, {sums}
             FROM usage_rollups WHERE tenant_id = $1 AND dim = ''",
            crate::usage::pg_store::SUMS
        ),
        &[&tenant, &version],
    )
    .await
    .map_err(fail("cannot set the usage totals"))?;
    queue_row(&tx, tenant).await?;
    for what in &changed {
        notify(&*tx, what)
            .await
            .map_err(fail("cannot notify the replicas"))?;
    }
    tx.commit()
        .await
        .map_err(fail("cannot commit the import"))?;
    Ok(id)
}

/// The tenant's `queue_tenants` row, from the imported jobs (SQLite keeps these counts in
/// memory; on PostgreSQL a lease only finds a tenant through its row): counts by status, the
/// earliest waiting job, a place at the back of the rotation, and what the caches would say
/// of the tenant (plan weight, `max_running_jobs`, active). No jobs, no row.
async fn queue_row(tx: &Transaction<'_>, tenant: Uuid) -> Result<(), String> {
    let read = fail("cannot read the imported tenant");
    let t = tx
        .query_one(
            "SELECT t.plan, t.status,
                    (SELECT body FROM settings_versions s WHERE s.tenant_id = t.id
                     ORDER BY version DESC LIMIT 1)
             FROM tenants t WHERE t.id = $1",
            &[&tenant],
        )
        .await
        .map_err(read)?;
    let plan = super::Plan::parse(t.get(0)).map_err(|e| format!("the imported tenant: {e}"))?;
    let settings: crate::settings::Settings = t
        .get::<_, Option<&str>>(2)
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("the imported tenant's settings: {e}"))?
        .unwrap_or_default();
    let info = crate::queue::pg::TenantInfo {
        plan,
        active: t.get::<_, &str>(1) == "active",
        max_running: i64::from(settings.running_jobs(plan)),
    };
    tx.execute(
        "INSERT INTO queue_tenants (tenant_id, weight, max_running, active, turn, next_run_at,
                                    queued, running, retrying, succeeded, dead, cancelled)
         SELECT $1, $2, $3, $4, nextval('queue_turns'),
                coalesce(min(run_at) FILTER (WHERE status IN ('queued', 'retrying')), 0),
                count(*) FILTER (WHERE status = 'queued'),
                count(*) FILTER (WHERE status = 'running'),
                count(*) FILTER (WHERE status = 'retrying'),
                count(*) FILTER (WHERE status = 'succeeded'),
                count(*) FILTER (WHERE status = 'dead'),
                count(*) FILTER (WHERE status = 'cancelled')
         FROM jobs WHERE tenant_id = $1 HAVING count(*) > 0",
        &[&tenant, &info.weight(), &info.max_running, &info.active],
    )
    .await
    .map_err(fail("cannot set the tenant's queue row"))?;
    Ok(())
}
