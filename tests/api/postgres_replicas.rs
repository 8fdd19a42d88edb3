//! Tenants, members and keys across two replicas on one PostgreSQL database (issue 19): what
//! one replica creates the other serves at once (its caches miss and read the store,
//! docs/SCALE_OUT.md §4.1), and the last-owner rule holds when both replicas remove owners at
//! the same moment (the tenant row lock, §4.2).
use crate::helpers::{pg_connect, pg_database, spawn_tuned, TestApp, ADMIN};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tenantry::db::pg::listen::{Handlers, Invalidation, Listener};
use uuid::Uuid;

async fn replica(url: &str) -> TestApp {
    spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url),
            ("ENCRYPTION_KEY", "postgres-replicas-test-key"),
            ("ENABLE_MULTI_TENANT", "true"),
        ],
        |_| {},
    )
    .await
}

#[tokio::test]
async fn a_tenant_and_key_created_on_one_replica_are_served_by_the_other() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let t = a.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap().to_string();
    a.put_member("acme", "alice", "owner").await;
    let key = a.create_key("acme", "owner").await;

    // The admin reads it by slug and by id; requests name it by path slug and by header.
    for path in [
        "/api/tenants/acme".to_string(),
        format!("/api/tenants/{id}"),
    ] {
        let r = b.get(&path, ADMIN).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["id"], id.as_str());
    }
    let r = b.get("/api/tenant/acme/members", ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"][0]["user_id"], "alice");
    let r = b
        .send(
            b.request("GET", "/api/members", Some(ADMIN))
                .header("X-Tenant-ID", &id),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The key authenticates on the replica that did not create it, as its tenant's owner.
    let r = b.get("/api/members", &key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["x-tenant-id"], id.as_str());
    let r = b.get("/api/keys", &key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // The other replica's writes see it too: a member added there, the tenant renamed.
    b.put_member("acme", "bob", "viewer").await;
    let r = b
        .call(
            "PATCH",
            "/api/tenants/acme",
            Some(ADMIN),
            Some(json!({"name": "Acme Two"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        a.get("/api/tenants/acme", ADMIN).await.body["name"],
        "Acme Two"
    );
    // A key neither replica knows stays unauthorized on both.
    let unknown = format!("tk_{}", "x".repeat(32));
    for app in [&a, &b] {
        assert_eq!(app.get("/api/members", &unknown).await.status, 401);
    }
    // Revoked on one, a key the other replica only ever read through (never cached) is refused
    // by it on the next request.
    let k2 = a
        .create_key_with("acme", json!({"name": "second", "role": "owner"}))
        .await;
    let second = k2["key"].as_str().unwrap();
    assert_eq!(b.get("/api/members", second).await.status, 200);
    let r = a
        .delete(
            &format!("/api/tenant/acme/keys/{}", k2["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The other replica refuses it within the contract's second: at once when it only read
    // the key through, by its listener when it holds the key in its cache.
    refused_within_a_second(&b, "/api/members", second, 401).await;
    // A tenant the other replica served, deactivated on one, is refused by the other within a
    // second (SCALE_OUT §4.1).
    let beta = a.create_tenant("beta").await;
    assert_eq!(b.get("/api/tenant/beta/members", ADMIN).await.status, 200);
    let r = a
        .post(
            &format!("/api/tenants/{}/deactivate", beta["id"].as_str().unwrap()),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused_within_a_second(&b, "/api/tenant/beta/members", ADMIN, 403).await;
    assert_eq!(
        b.get("/api/tenants/beta", ADMIN).await.body["status"],
        "inactive"
    );
}

/// Two owners, each removed on a different replica at the same moment, round after round:
/// exactly one removal wins and the tenant keeps an owner. Without the tenant row lock both
/// count two owners and both delete (READ COMMITTED), which this test catches within a few
/// rounds.
#[tokio::test]
async fn concurrent_owner_removals_on_two_replicas_never_leave_zero_owners() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    a.create_tenant("acme").await;
    let pg = pg_connect(&url).await;
    for round in 0..25 {
        a.put_member("acme", "o1", "owner").await;
        a.put_member("acme", "o2", "owner").await;
        let (x, y) = tokio::join!(
            a.delete("/api/tenant/acme/members/o1", ADMIN),
            b.delete("/api/tenant/acme/members/o2", ADMIN)
        );
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(statuses, [204, 409], "round {round}: {} {}", x.body, y.body);
        let owners: i64 = pg
            .query_one(
                "SELECT count(*) FROM tenant_users u JOIN tenants t ON t.id = u.tenant_id
                 WHERE t.slug = 'acme' AND u.role = 'owner'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owners, 1, "round {round}");
    }
}

/// What each admin write of tenants, members and keys tells the other replicas, as a replica's
/// listener hears it: the entity it changed, once its transaction committed.
#[tokio::test]
async fn each_admin_write_tells_the_other_replicas_what_it_changed() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    let heard: Arc<Mutex<Vec<Invalidation>>> = Arc::default();
    let h = heard.clone();
    let handlers = Handlers {
        on_change: Arc::new(move |what| {
            h.lock().unwrap().push(what);
            Ok(())
        }),
        reload_all: Arc::new(|| Ok(())),
    };
    let listener = Listener::start(&url, handlers).unwrap();
    let start = Instant::now();
    while !listener.is_fresh(Instant::now()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "listener never fresh"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = app.create_tenant("acme").await;
    let tenant = Uuid::parse_str(t["id"].as_str().unwrap()).unwrap();
    app.put_member("acme", "alice", "owner").await;
    app.put_member("acme", "bob", "member").await;
    let r = app.delete("/api/tenant/acme/members/bob", ADMIN).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let k = app
        .create_key_with("acme", json!({"name": "k", "role": "owner"}))
        .await;
    let key = Uuid::parse_str(k["id"].as_str().unwrap()).unwrap();
    let r = app
        .delete(&format!("/api/tenant/acme/keys/{key}"), ADMIN)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // A refused write (the last owner) and a no-op deactivation tell nothing.
    let r = app.delete("/api/tenant/acme/members/alice", ADMIN).await;
    assert_eq!(r.status, 409, "{}", r.body);
    for _ in 0..2 {
        let r = app
            .post(
                &format!("/api/tenants/{tenant}/deactivate"),
                ADMIN,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = app
        .delete(&format!("/api/tenants/{tenant}?confirm=acme"), ADMIN)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let expected = vec![
        Invalidation::Tenant(tenant),
        Invalidation::Settings(tenant),
        Invalidation::Member(tenant, "alice".into()),
        Invalidation::Member(tenant, "bob".into()),
        Invalidation::Member(tenant, "bob".into()),
        Invalidation::Key(key),
        Invalidation::Key(key),
        // Deactivated once, then deleted.
        Invalidation::Tenant(tenant),
        Invalidation::Tenant(tenant),
    ];
    let start = Instant::now();
    while heard.lock().unwrap().len() < expected.len() && start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A moment more, in case anything unexpected is still on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*heard.lock().unwrap(), expected);
}

/// Tenants named alike, created on two replicas at the same moment without a slug: each gets a
/// slug of its own, derived from the name (a derived slug another replica just took moves on
/// to the next candidate instead of failing the create).
#[tokio::test]
async fn tenants_created_alike_on_two_replicas_at_once_get_distinct_derived_slugs() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let body = json!({"name": "Acme Corp"});
    let mut creates = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        creates.push(app.post("/api/tenants", ADMIN, body.clone()));
    }
    let mut slugs = Vec::new();
    for r in futures_util::future::join_all(creates).await {
        assert_eq!(r.status, 201, "{}", r.body);
        slugs.push(r.body["slug"].as_str().unwrap().to_string());
    }
    slugs.sort();
    let mut expected: Vec<String> = std::iter::once("acme-corp".to_string())
        .chain((2..=8).map(|n| format!("acme-corp-{n}")))
        .collect();
    expected.sort();
    assert_eq!(slugs, expected);
}

/// Polls `path` on `app` until it answers `status`, failing after one second.
async fn refused_within_a_second(
    app: &crate::helpers::TestApp,
    path: &str,
    token: &str,
    status: u16,
) {
    let start = std::time::Instant::now();
    loop {
        let r = app.get(path, token).await;
        if r.status == status {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{path} still answers {} after 1 s: {}",
            r.status,
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
