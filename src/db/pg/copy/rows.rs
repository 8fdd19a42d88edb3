//! One table's rows from SQLite into PostgreSQL with `COPY ... FROM STDIN (FORMAT binary)`:
//! each SQLite value converted by the PostgreSQL column's type. A value that does not convert
//! fails the copy naming the table, the column and the row's key, never the value: some
//! columns (sealed provider keys and webhook secrets, key hashes) must never reach a terminal.
use super::{lite_fail, pg_fail, quoted, DEFAULT_TENANT};
use crate::db::pg::schema::Table;
use rusqlite::types::ValueRef;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;
use uuid::Uuid;

/// The PostgreSQL column types the baseline uses, by `schema`'s normalized names.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    Uuid,
}

impl Kind {
    fn of(normalized: &str) -> Option<Kind> {
        Some(match normalized {
            "integer" => Kind::Int,
            "text" => Kind::Text,
            "blob" => Kind::Bytes,
            "uuid" => Kind::Uuid,
            _ => return None,
        })
    }

    fn pg_type(self) -> Type {
        match self {
            Kind::Int => Type::INT8,
            Kind::Text => Type::TEXT,
            Kind::Bytes => Type::BYTEA,
            Kind::Uuid => Type::UUID,
        }
    }
}

/// One value ready for PostgreSQL, borrowed from the SQLite row where it can be.
enum Cell<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(Option<&'a [u8]>),
    Uuid(Option<Uuid>),
}

impl Cell<'_> {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(v) => v,
            Cell::Text(v) => v,
            Cell::Bytes(v) => v,
            Cell::Uuid(v) => v,
        }
    }
}

fn class(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// `v` as PostgreSQL's `kind`, or what is wrong with it (without the value).
fn convert<'a>(kind: Kind, v: ValueRef<'a>) -> Result<Cell<'a>, String> {
    let text = |b: &'a [u8]| -> Result<&'a str, String> {
        let s = std::str::from_utf8(b).map_err(|_| "is not valid UTF-8".to_string())?;
        if s.contains('\0') {
            return Err("holds a NUL character, which PostgreSQL text cannot".into());
        }
        Ok(s)
    };
    Ok(match (kind, v) {
        (Kind::Int, ValueRef::Null) => Cell::Int(None),
        (Kind::Text, ValueRef::Null) => Cell::Text(None),
        (Kind::Bytes, ValueRef::Null) => Cell::Bytes(None),
        (Kind::Uuid, ValueRef::Null) => Cell::Uuid(None),
        (Kind::Int, ValueRef::Integer(i)) => Cell::Int(Some(i)),
        (Kind::Text, ValueRef::Text(b)) => Cell::Text(Some(text(b)?)),
        (Kind::Bytes, ValueRef::Blob(b)) => Cell::Bytes(Some(b)),
        (Kind::Uuid, ValueRef::Text(b)) => {
            let s = text(b)?;
            // Only the form tenantry writes: any other would come back from PostgreSQL
            // spelled differently from the original.
            match Uuid::parse_str(s) {
                Ok(u) if u.hyphenated().to_string() == s => Cell::Uuid(Some(u)),
                _ => return Err("is not a UUID in lowercase hyphenated form".into()),
            }
        }
        (kind, other) => {
            let want = match kind {
                Kind::Int => "an integer",
                Kind::Text => "text",
                Kind::Bytes => "a blob",
                Kind::Uuid => "a UUID as text",
            };
            return Err(format!(
                "holds {} where PostgreSQL takes {want}",
                class(&other)
            ));
        }
    })
}

/// The row's primary key for an error message, or its position when the bad value is part of
/// the key itself. Keys are ids, names and numbers, never secrets.
fn which_row(r: &rusqlite::Row<'_>, key: &[usize], bad: usize, n: u64) -> String {
    if key.is_empty() || key.contains(&bad) {
        return format!("row {n} in key order");
    }
    let parts: Vec<String> = key
        .iter()
        .map(|i| match r.get_ref(*i) {
            Ok(ValueRef::Integer(v)) => v.to_string(),
            Ok(ValueRef::Text(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => "?".into(),
        })
        .collect();
    format!("the row with key ({})", parts.join(", "))
}

/// Copies every row of `table` (ordered by its primary key); the default tenant and its first
/// settings exist already after the migrations and are replaced by SQLite's.
pub(super) async fn copy_table(
    snap: &rusqlite::Connection,
    tx: &Transaction<'_>,
    table: &str,
    t: &Table,
) -> Result<u64, String> {
    let mut kinds = Vec::with_capacity(t.columns.len());
    for (name, ty, _) in &t.columns {
        kinds.push(Kind::of(ty).ok_or_else(|| {
            format!("cannot copy {table}.{name}: PostgreSQL type {ty} is not one copy knows")
        })?);
    }
    let names: Vec<&str> = t.columns.iter().map(|c| c.0.as_str()).collect();
    let cols = names
        .iter()
        .map(|n| quoted(n))
        .collect::<Vec<_>>()
        .join(", ");
    let key: Vec<usize> = t
        .primary_key
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k))
        .collect();
    let order = t
        .primary_key
        .iter()
        .map(|k| quoted(k))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if order.is_empty() {
        String::new()
    } else {
        format!("ORDER BY {order}")
    };
    let mut filter = String::new();
    match table {
        "tenants" => {
            replace_default_tenant(snap, tx, &names, &kinds, &cols).await?;
            filter = format!("WHERE id <> '{DEFAULT_TENANT}'");
        }
        "settings_versions" => {
            tx.execute(
                &format!(
                    "DELETE FROM settings_versions WHERE tenant_id = '{DEFAULT_TENANT}' AND version = 1"
                ),
                &[],
            )
            .await
            .map_err(pg_fail("cannot replace the default tenant's settings"))?;
        }
        _ => {}
    }
    let q = quoted(table);
    let mut stmt = snap
        .prepare(&format!("SELECT {cols} FROM {q} {filter} {order}"))
        .map_err(lite_fail)?;
    let mut rows = stmt.query([]).map_err(lite_fail)?;
    let fail = |e: tokio_postgres::Error| {
        format!("cannot copy table {table}: {}", crate::db::pg::describe(&e))
    };
    let sink = tx
        .copy_in(&format!("COPY {q} ({cols}) FROM STDIN (FORMAT binary)"))
        .await
        .map_err(fail)?;
    let types: Vec<Type> = kinds.iter().map(|k| k.pg_type()).collect();
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let mut n: u64 = 0;
    while let Some(r) = rows.next().map_err(lite_fail)? {
        n += 1;
        let mut cells = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            let v = r.get_ref(i).map_err(lite_fail)?;
            let cell = convert(*kind, v).map_err(|what| {
                format!(
                    "cannot copy table {table}: column {} of {} {what}; nothing was copied",
                    names[i],
                    which_row(r, &key, i, n)
                )
            })?;
            cells.push(cell);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::sql).collect();
        writer.as_mut().write(&refs).await.map_err(fail)?;
    }
    writer.as_mut().finish().await.map_err(fail)
}

/// The migrations' default tenant takes SQLite's values (its name, plan, times); the row
/// cannot be deleted (a trigger guards it), so it is updated in place.
async fn replace_default_tenant(
    snap: &rusqlite::Connection,
    tx: &Transaction<'_>,
    names: &[&str],
    kinds: &[Kind],
    cols: &str,
) -> Result<(), String> {
    let mut stmt = snap
        .prepare(&format!("SELECT {cols} FROM tenants WHERE id = ?1"))
        .map_err(lite_fail)?;
    let mut rows = stmt.query([DEFAULT_TENANT]).map_err(lite_fail)?;
    // Without one in SQLite the migrations' stays, and the row counts will not match.
    let Some(r) = rows.next().map_err(lite_fail)? else {
        return Ok(());
    };
    let mut cells = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let v = r.get_ref(i).map_err(lite_fail)?;
        cells.push(convert(*kind, v).map_err(|what| {
            format!(
                "cannot copy table tenants: column {} of the default tenant {what}",
                names[i]
            )
        })?);
    }
    let sets: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} = ${}", quoted(n), i + 1))
        .collect();
    let sql = format!(
        "UPDATE tenants SET {} WHERE id = '{DEFAULT_TENANT}'",
        sets.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::sql).collect();
    tx.execute(&sql, &refs)
        .await
        .map_err(pg_fail("cannot copy the default tenant"))?;
    Ok(())
}
