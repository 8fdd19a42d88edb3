//! Replicas on one PostgreSQL database keep their caches in step (docs/SCALE_OUT.md §4.1): a
//! change committed on one is used by the others within the contract's second, through the
//! cache listener, and a replica whose listener is not fresh reads access from the store.
use crate::helpers::{pg_connect, pg_database, TestApp, ADMIN};
use crate::postgres_serve::replica;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Polls `ok` on `app`'s answer to GET `path` for up to a second; how long it took.
async fn within_a_second(
    app: &TestApp,
    path: &str,
    token: &str,
    ok: impl Fn(u16, &serde_json::Value) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= Duration::from_secs(1) {
        let r = app.get(path, token).await;
        if ok(r.status, &r.body) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// A live owner key of the default tenant, written straight into the database (key
/// administration has its own PostgreSQL path), announced with `notify` when asked.
async fn insert_key(c: &tokio_postgres::Client, announce: bool) -> (String, Uuid) {
    let (token, id) = (format!("tk_{}", Uuid::new_v4().simple()), Uuid::new_v4());
    let hash = tenantry::auth::admin::sha256(&token);
    c.execute(
        "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_at)
         VALUES ($1, '00000000-0000-0000-0000-000000000000', 'k', 'owner', $2, 'tk_', 0)",
        &[&id, &&hash[..]],
    )
    .await
    .unwrap();
    if announce {
        notify_key(c, id).await;
    }
    (token, id)
}

async fn notify_key(c: &tokio_postgres::Client, id: Uuid) {
    c.execute(
        "SELECT pg_notify('tenantry_cache', $1)",
        &[&format!("key:{id}")],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn settings_changed_on_one_replica_are_used_by_the_other_within_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let r = a
        .call(
            "PATCH",
            "/api/settings",
            Some(ADMIN),
            Some(json!({"warn_at_percent": 55, "rate_limit_per_minute": 7})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = within_a_second(&b, "/api/settings", ADMIN, |_, s| {
        s["version"] == 2 && s["warn_at_percent"] == 55
    })
    .await;
    assert!(seen.is_some(), "replica b still serves version 1");
    // And back: a rollback on b is a's current version.
    let r = b
        .post("/api/settings/rollback", ADMIN, json!({"version": 1}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = within_a_second(&a, "/api/settings", ADMIN, |_, s| {
        s["version"] == 3 && s["warn_at_percent"] == 80
    })
    .await;
    assert!(seen.is_some(), "replica a did not take b's rollback");
}

/// An acknowledged settings write is what every replica's next read shows, without waiting
/// for the listener.
#[tokio::test]
async fn a_settings_version_acknowledged_by_one_replica_is_the_others_next_read() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    for i in 0..20 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let r = writer
            .call(
                "PATCH",
                "/api/settings",
                Some(ADMIN),
                Some(json!({"custom": {"i": i}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let read = reader.get("/api/settings", ADMIN).await;
        assert_eq!(read.body["version"], r.body["version"], "write {i}");
        assert_eq!(read.body["custom"], json!({"i": i}));
    }
}

#[tokio::test]
async fn a_key_revoked_and_announced_is_refused_by_every_replica_within_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let c = pg_connect(&url).await;
    let (key, id) = insert_key(&c, true).await;
    for app in [&a, &b] {
        let took = within_a_second(app, "/api/settings", &key, |s, _| s == 200).await;
        assert!(took.is_some(), "a new key is not served");
    }
    c.execute("UPDATE api_keys SET revoked_at = 1 WHERE id = $1", &[&id])
        .await
        .unwrap();
    notify_key(&c, id).await;
    for app in [&a, &b] {
        let took = within_a_second(app, "/api/settings", &key, |s, _| s == 401).await;
        assert!(took.is_some(), "a revoked key is still served");
    }
}

/// A tenant deactivated (by SQL here, announced as the tenancy area's writes announce it) is
/// refused by every replica within a second, its key with it; reactivated, it is served again.
#[tokio::test]
async fn a_tenant_deactivated_and_announced_is_refused_by_every_replica_within_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = [
        ("TENANTRY_DATABASE_URL", url.as_str()),
        ("ENCRYPTION_KEY", crate::postgres_serve::KEY),
        ("ENABLE_MULTI_TENANT", "true"),
    ];
    let (a, b) = (
        crate::helpers::spawn_tuned(&env, |_| {}).await,
        crate::helpers::spawn_tuned(&env, |_| {}).await,
    );
    let c = pg_connect(&url).await;
    let (tenant, key_id) = (Uuid::new_v4(), Uuid::new_v4());
    let key = format!("tk_{}", Uuid::new_v4().simple());
    let hash = tenantry::auth::admin::sha256(&key);
    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
         VALUES ('{tenant}', 'Acme', 'acme', 'pro', 'active', 0, 0);
         INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
         VALUES ('{tenant}', 1, '{{}}', 'system', 0);
         SELECT pg_notify('tenantry_cache', 'tenant:{tenant}');
         COMMIT;"
    ))
    .await
    .unwrap();
    c.execute(
        "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_at)
         VALUES ($1, $2, 'k', 'owner', $3, 'tk_', 0)",
        &[&key_id, &tenant, &&hash[..]],
    )
    .await
    .unwrap();
    notify_key(&c, key_id).await;
    for app in [&a, &b] {
        let served = |s: u16, _: &serde_json::Value| s == 200;
        assert!(
            within_a_second(app, "/api/tenant/acme/settings", ADMIN, served)
                .await
                .is_some()
        );
        assert!(within_a_second(app, "/api/settings", &key, served)
            .await
            .is_some());
    }
    let status = |to: &'static str| {
        let c = &c;
        async move {
            c.batch_execute(&format!(
                "BEGIN;
                 UPDATE tenants SET status = '{to}' WHERE id = '{tenant}';
                 SELECT pg_notify('tenantry_cache', 'tenant:{tenant}');
                 COMMIT;"
            ))
            .await
            .unwrap();
        }
    };
    status("inactive").await;
    for app in [&a, &b] {
        let refused = |s: u16, _: &serde_json::Value| s == 403;
        assert!(
            within_a_second(app, "/api/settings", &key, refused)
                .await
                .is_some(),
            "a deactivated tenant is still served"
        );
        app.get("/api/tenant/acme/settings", ADMIN)
            .await
            .assert_error(403, "tenant_unavailable");
    }
    status("active").await;
    for app in [&a, &b] {
        let served = |s: u16, _: &serde_json::Value| s == 200;
        assert!(within_a_second(app, "/api/settings", &key, served)
            .await
            .is_some());
    }
}

/// While the listener cannot get fresh (its reload waits on a lock), a key revoked without any
/// notification is refused at once: access is read from the store, not the cache.
#[tokio::test]
async fn a_replica_whose_listener_is_not_fresh_reads_access_from_the_store() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    let c = pg_connect(&url).await;
    let (revoked, id) = insert_key(&c, true).await;
    let (kept, _) = insert_key(&c, true).await;
    for key in [&revoked, &kept] {
        let took = within_a_second(&app, "/api/events", key, |s, _| s == 200).await;
        assert!(took.is_some());
    }
    // Requests below read events, not settings: the settings table is locked.
    let mut locker = pg_connect(&url).await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE settings_versions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'tenantry-listener' AND datname = current_database()",
        &[],
    )
    .await
    .unwrap();
    // Past the listener's freshness (750 ms): its new session's reload is stuck on the lock.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.execute("UPDATE api_keys SET revoked_at = 1 WHERE id = $1", &[&id])
        .await
        .unwrap();
    app.get("/api/events", &revoked)
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(app.get("/api/events", &kept).await.status, 200);
    assert_eq!(app.get("/api/events", ADMIN).await.status, 200);
    let by_slug = app.get("/api/tenant/default/events", &kept).await;
    assert_eq!(by_slug.status, 200, "{}", by_slug.body);
    lock.rollback().await.unwrap();
    let took = within_a_second(&app, "/api/events", &kept, |s, _| s == 200).await;
    assert!(took.is_some());
    app.get("/api/events", &revoked)
        .await
        .assert_error(401, "unauthorized");
}

/// A basic-plan tenant (10 a minute, burst 20) hammering two replicas gets at most rate +
/// burst + 10% in any minute: the replicas take their tokens from one shared bucket. With a
/// bucket each, the first second alone would admit 40.
#[tokio::test]
async fn a_basic_tenant_hammering_two_replicas_gets_at_most_the_contracts_bound() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = [
        ("TENANTRY_DATABASE_URL", url.as_str()),
        ("ENCRYPTION_KEY", crate::postgres_serve::KEY),
        ("ENABLE_MULTI_TENANT", "true"),
    ];
    let a = crate::helpers::spawn_tuned(&env, |_| {}).await;
    // The default tenant made basic, and a key of it, before the second replica loads them
    // and while the first learns of them.
    let c = pg_connect(&url).await;
    c.batch_execute(
        "UPDATE tenants SET plan = 'basic' WHERE id = '00000000-0000-0000-0000-000000000000';
         SELECT pg_notify('tenantry_cache', 'tenant:00000000-0000-0000-0000-000000000000')",
    )
    .await
    .unwrap();
    let (key, _) = insert_key(&c, true).await;
    let b = crate::helpers::spawn_tuned(&env, |_| {}).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One app time for both replicas.
    let start = chrono::Utc::now();
    let mut admitted: Vec<i64> = Vec::new();
    for second in 0..90 {
        let at = start + chrono::Duration::seconds(second);
        a.clock.set(at);
        b.clock.set(at);
        let sends = (0..6).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.get("/api/settings/history", &key)
        });
        for r in futures_util::future::join_all(sends).await {
            match r.status {
                200 => {
                    assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
                    admitted.push(second);
                }
                429 => r.assert_error(429, "rate_limited"),
                other => panic!("unexpected {other}: {}", r.body),
            }
        }
    }
    let busiest = (0..admitted.len())
        .map(|i| admitted[i..].partition_point(|t| *t < admitted[i] + 60))
        .max()
        .unwrap_or(0);
    // rate + burst = 30; the contract allows 10% over.
    assert!(busiest <= 33, "{busiest} admitted in one minute");
    assert!(busiest >= 20, "the burst is admitted: {busiest}");
}

/// A price set through one replica prices the next events on the other within a second.
#[tokio::test]
async fn a_price_set_on_one_replica_prices_events_on_the_other_within_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let r = a
        .put(
            "/api/pricing/tiny-model",
            ADMIN,
            json!({"input_usd_per_million": 0.15, "output_usd_per_million": 0.6}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let took = within_a_second(&b, "/api/pricing", ADMIN, |s, body| {
        s == 200
            && body["items"]
                .as_array()
                .or_else(|| body.as_array())
                .is_some_and(|items| items.iter().any(|p| p["model"] == "tiny-model"))
    })
    .await;
    assert!(took.is_some(), "the other replica never listed the price");
    let r = b
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"model": "tiny-model", "input_tokens": 1, "output_tokens": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "0.00000015"
    );
}
