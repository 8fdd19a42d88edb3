//! Settings, provider keys and events served from PostgreSQL (issue 19), on the default tenant
//! (tenant and key administration have their own PostgreSQL paths), on one replica and on two
//! sharing one database.
use crate::helpers::{pg_connect, pg_database, ADMIN};
use crate::postgres_serve::replica;
use serde_json::json;

const SECRET: &str = "sk-proj-canary-0123456789abcdefWXYZ";

#[tokio::test]
async fn settings_versions_history_and_rollback_are_stored_in_postgres() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    for (n, warn) in [(2, 50), (3, 60), (4, 70)] {
        let r = app
            .call(
                "PATCH",
                "/api/settings",
                Some(ADMIN),
                Some(json!({"warn_at_percent": warn, "custom": {"n": n}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["version"], n);
    }
    let history = app.walk("/api/settings/history", ADMIN, 1).await;
    let versions: Vec<_> = history.iter().map(|h| h["version"].clone()).collect();
    assert_eq!(versions, vec![4, 3, 2, 1], "newest first, one a page");
    assert_eq!(history[1]["settings"]["warn_at_percent"], 60);
    assert_eq!(history[0]["changed_by"], "admin");
    let r = app
        .post("/api/settings/rollback", ADMIN, json!({"version": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 5);
    assert_eq!(r.body["warn_at_percent"], 50);
    assert_eq!(r.body["custom"], json!({"n": 2}));
    app.post("/api/settings/rollback", ADMIN, json!({"version": 99}))
        .await
        .assert_error(404, "not_found");
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"warn_at_percent": 0})),
    )
    .await
    .assert_error(400, "invalid_request");
    assert_eq!(app.get("/api/settings", ADMIN).await.body["version"], 5);
    // Each version is a row; each change an event, written in the same transaction.
    let c = pg_connect(&url).await;
    let rows: Vec<i64> = c
        .query(
            "SELECT version FROM settings_versions ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, vec![1, 2, 3, 4, 5]);
    let events = app
        .walk("/api/events?category=api.lifecycle", ADMIN, 2)
        .await;
    let types: Vec<_> = events.iter().map(|e| e["event_type"].clone()).collect();
    assert_eq!(
        types,
        vec![
            "settings.rolled_back",
            "settings.changed",
            "settings.changed",
            "settings.changed"
        ]
    );
    assert_eq!(events[0]["data"]["version"], 5);
    assert_eq!(events[0]["data"]["rolled_back_to"], 2);
    // A restart loads the newest version from PostgreSQL.
    let app = app.restart().await;
    assert_eq!(app.get("/api/settings", ADMIN).await.body["version"], 5);
}

#[tokio::test]
async fn provider_keys_are_sealed_in_postgres_and_opened_for_credentials() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    let r = app
        .put(
            "/api/settings/provider-keys/openai",
            ADMIN,
            json!({"api_key": SECRET}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["provider_keys"]["openai"]["masked"], "sk-...WXYZ");
    let r = app
        .call(
            "PATCH",
            "/api/settings",
            Some(ADMIN),
            Some(json!({"execution_mode": "byo_key"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get("/api/credentials/openai", ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["api_key"].as_str(), r.body["source"].as_str()),
        (Some(SECRET), Some("byo_key"))
    );
    app.get("/api/credentials/anthropic", ADMIN)
        .await
        .assert_error(409, "byo_key_missing");
    let c = pg_connect(&url).await;
    let plain: i64 = c
        .query_one(
            "SELECT count(*) FROM provider_keys
             WHERE position(convert_to($1, 'UTF8') in ciphertext) > 0",
            &[&SECRET],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, 0, "the key is stored sealed");
    // A damaged ciphertext is a 409 and one critical event, however often it is asked for.
    c.execute(
        "UPDATE provider_keys SET ciphertext = substring(ciphertext from 1 for 10)",
        &[],
    )
    .await
    .unwrap();
    for _ in 0..2 {
        app.get("/api/credentials/openai", ADMIN)
            .await
            .assert_error(409, "provider_key_unreadable");
    }
    let r = app
        .delete("/api/settings/provider-keys/openai", ADMIN)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    app.delete("/api/settings/provider-keys/openai", ADMIN)
        .await
        .assert_error(404, "not_found");
    let events = app.walk("/api/events?category=security", ADMIN, 10).await;
    let types: Vec<_> = events.iter().map(|e| e["event_type"].clone()).collect();
    assert_eq!(
        types,
        vec![
            "provider_key.removed",
            "provider_key.unreadable",
            "provider_key.set"
        ]
    );
    assert_eq!(events[1]["severity"], "critical");
    assert!(!events.iter().any(|e| e.to_string().contains("canary")));
}

#[tokio::test]
async fn app_events_are_posted_filtered_and_paged_from_postgres() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    for (i, severity) in ["info", "warning", "info", "error", "info"]
        .iter()
        .enumerate()
    {
        let r = app
            .post(
                "/api/events",
                ADMIN,
                json!({"category": "data.sync", "event_type": "crm.import", "severity": severity,
                       "message": format!("import {i}"), "data": {"i": i}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["data"], json!({"i": i}));
        assert_eq!(r.body["tenant_id"], "00000000-0000-0000-0000-000000000000");
    }
    app.post(
        "/api/events",
        ADMIN,
        json!({"category": "security", "event_type": "x", "severity": "info", "message": "m"}),
    )
    .await
    .assert_error(400, "invalid_request");
    let all = app.walk("/api/events?category=data.sync", ADMIN, 2).await;
    let messages: Vec<_> = all.iter().map(|e| e["message"].clone()).collect();
    assert_eq!(
        messages,
        vec!["import 4", "import 3", "import 2", "import 1", "import 0"]
    );
    let info = app.walk("/api/events?severity=info", ADMIN, 2).await;
    assert_eq!(info.len(), 3);
    // Events at one microsecond page by their sequence; a window ends before `to`.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let none = app
        .get(
            &format!("/api/events?from={}", later.replace('+', "%2B")),
            ADMIN,
        )
        .await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.body["items"], json!([]));
}

/// Two replicas writing versions of one tenant's settings at once take turns on the tenant's
/// row: every write gets its own version, none fails, none is lost.
#[tokio::test]
async fn concurrent_patches_on_two_replicas_each_get_their_own_version() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let mut patches = Vec::new();
    for i in 0..40u64 {
        let app = if i % 2 == 0 { &a } else { &b };
        patches.push(app.call(
            "PATCH",
            "/api/settings",
            Some(ADMIN),
            Some(json!({"custom": {"i": i}})),
        ));
    }
    let mut versions: Vec<i64> = futures_util::future::join_all(patches)
        .await
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["version"].as_i64().unwrap()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (2..=41).collect::<Vec<_>>());
    let n: i64 = pg_connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'settings.changed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 40);
}
