//! Tenants, members and keys across two replicas on one PostgreSQL database (issue 19): what
//! one replica creates the other serves at once (its caches miss and read the store,
//! docs/SCALE_OUT.md §4.1), and the last-owner rule holds when both replicas remove owners at
//! the same moment (the tenant row lock, §4.2).
use crate::helpers::{pg_connect, pg_database, spawn_tuned, TestApp, ADMIN};
use serde_json::json;

async fn replica(url: &str) -> TestApp {
    spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url),
            ("TENANTRY_POSTGRES_PREVIEW", "true"),
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
