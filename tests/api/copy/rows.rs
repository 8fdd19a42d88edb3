//! Row-by-row comparison of the SQLite file with the PostgreSQL copy: every table, in
//! primary-key order, UUIDs compared as their text and BLOBs byte for byte.
use std::path::Path;

/// A value as both stores' rows compare: UUIDs as their text.
#[derive(Debug, PartialEq)]
enum V {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn sqlite_rows(c: &rusqlite::Connection, table: &str, cols: &[String], key: &str) -> Vec<Vec<V>> {
    use rusqlite::types::ValueRef;
    let sql = format!("SELECT {} FROM {table} ORDER BY {key}", cols.join(", "));
    let mut stmt = c.prepare(&sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        out.push(
            (0..cols.len())
                .map(|i| match r.get_ref(i).unwrap() {
                    ValueRef::Null => V::Null,
                    ValueRef::Integer(v) => V::Int(v),
                    ValueRef::Text(t) => V::Text(String::from_utf8(t.to_vec()).unwrap()),
                    ValueRef::Blob(b) => V::Bytes(b.to_vec()),
                    ValueRef::Real(f) => panic!("a real in {table}: {f}"),
                })
                .collect(),
        );
    }
    out
}

async fn pg_rows(
    c: &tokio_postgres::Client,
    table: &str,
    cols: &[String],
    key: &str,
) -> Vec<Vec<V>> {
    use tokio_postgres::types::Type;
    let sql = format!("SELECT {} FROM {table} ORDER BY {key}", cols.join(", "));
    let rows = c.query(&sql, &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            (0..cols.len())
                .map(|i| {
                    let ty = r.columns()[i].type_().clone();
                    if ty == Type::INT8 {
                        r.get::<_, Option<i64>>(i).map_or(V::Null, V::Int)
                    } else if ty == Type::UUID {
                        r.get::<_, Option<uuid::Uuid>>(i)
                            .map_or(V::Null, |u| V::Text(u.to_string()))
                    } else if ty == Type::BYTEA {
                        r.get::<_, Option<Vec<u8>>>(i).map_or(V::Null, V::Bytes)
                    } else {
                        r.get::<_, Option<String>>(i).map_or(V::Null, V::Text)
                    }
                })
                .collect()
        })
        .collect()
}

/// Every table of the SQLite file equals PostgreSQL's, row by row in primary-key order;
/// returns the tables and their row counts.
pub async fn assert_same_rows(db: &Path, pg: &tokio_postgres::Client) -> Vec<(String, usize)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let schema = tenantry::db::pg::schema::sqlite(&c).unwrap();
    let mut counts = Vec::new();
    for (table, t) in &schema {
        let cols: Vec<String> = t.columns.iter().map(|c| format!("\"{}\"", c.0)).collect();
        let key = t.primary_key.join(", ");
        let want = sqlite_rows(&c, table, &cols, &key);
        let have = pg_rows(pg, table, &cols, &key).await;
        assert_eq!(want.len(), have.len(), "row count of {table}");
        for (w, h) in want.iter().zip(&have) {
            assert_eq!(w, h, "a row of {table}");
        }
        counts.push((table.clone(), want.len()));
    }
    counts
}
