//! The `meta` table on PostgreSQL: the instance's small key-value facts (see `db::meta`).
use tokio_postgres::GenericClient;

pub async fn get(
    c: &impl GenericClient,
    key: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(
        c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)),
    )
}

pub async fn set(
    c: &impl GenericClient,
    key: &str,
    value: &str,
) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}
