//! `GET /api/usage/events/export`: every matching event as CSV, oldest first, that a standard
//! CSV reader parses back to what the JSON list says, for one tenant only.
use crate::helpers::{spawn_app, spawn_with, TestApp, ADMIN};
use serde_json::{json, Value};

/// The export's raw answer: status, content type and body text.
async fn export(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let res = app
        .request("GET", path, Some(token))
        .send()
        .await
        .expect("request reaches the server");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, res.text().await.expect("whole body"))
}

/// The CSV as records keyed by the header's names.
fn records(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.expect("a well-formed CSV record");
            assert_eq!(rec.len(), header.len(), "every row has every column");
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

async fn ingest(app: &TestApp, token: &str, events: Vec<Value>) {
    let r = app
        .post("/api/usage/events", token, json!({ "events": events }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

fn at(day: u32, second: u32) -> String {
    format!("2026-10-{day:02}T00:00:{second:02}Z")
}

#[tokio::test]
async fn the_csv_parses_back_to_the_json_list_field_for_field() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    let tricky = json!({"note": "line one\nline two, \"quoted\"", "n": 1.50});
    ingest(
        &app,
        &key,
        vec![
            json!({"event_id": "e1", "timestamp": at(1, 1), "model": "gpt,\"4\"", "input_tokens": 1000,
                   "output_tokens": 500, "cache_read_tokens": 400, "cache_write_tokens": 100,
                   "reasoning_tokens": 200, "agent_name": "writer, \"senior\"", "user_id": "u 1",
                   "pipeline_stage": "draft", "job_id": "j1", "duration_ms": 2300,
                   "metadata": tricky}),
            json!({"timestamp": at(1, 2), "model": "gpt-4o-mini", "input_tokens": 1200,
                   "output_tokens": 300}),
            json!({"event_id": "e3", "timestamp": at(1, 3), "model": "m", "input_tokens": 1,
                   "output_tokens": 0, "cost_usd": 0.000000001}),
        ],
    )
    .await;
    let (status, ctype, text) = export(&app, "/api/usage/events/export", &key).await;
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    // RFC 4180: a field with a comma or quote is quoted, its quotes doubled.
    assert!(text.contains(r#","gpt,""4""","#), "{text}");
    assert!(text.contains(r#","writer, ""senior""","#), "{text}");

    let rows = records(&text);
    let mut items = app.walk("/api/usage/events", &key, 100).await;
    items.reverse(); // the list is newest first, the export oldest first
    assert_eq!(rows.len(), 3);
    for (row, item) in rows.iter().zip(&items) {
        let fields = item.as_object().unwrap();
        assert_eq!(
            row.len(),
            fields.len(),
            "the export has the list's fields: {row:?}"
        );
        for (name, v) in fields {
            let cell = &row[name];
            match v {
                Value::Null => assert_eq!(cell, "", "{name}"),
                Value::String(s) => assert_eq!(cell, s, "{name}"),
                Value::Object(_) => {
                    assert_eq!(&serde_json::from_str::<Value>(cell).unwrap(), v, "{name}")
                }
                other => assert_eq!(cell, &other.to_string(), "{name}"),
            }
        }
    }
    assert_eq!(rows[0]["model"], "gpt,\"4\"");
    assert_eq!(rows[0]["cache_read_tokens"], "400");
    assert_eq!(rows[0]["reasoning_tokens"], "200");
    let meta: Value = serde_json::from_str(&rows[0]["metadata"]).unwrap();
    assert_eq!(meta["note"], "line one\nline two, \"quoted\"");
    assert_eq!(rows[2]["estimated_cost_usd"], "0.000000001");
}

#[tokio::test]
async fn the_export_is_oldest_first_and_applies_every_filter() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    let ev = |id: &str, ts: String, model: &str, extra: Value| {
        let mut e = json!({"event_id": id, "timestamp": ts, "model": model,
                           "input_tokens": 1, "output_tokens": 1});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    // Sent out of order: the export sorts by time.
    ingest(
        &app,
        &key,
        vec![
            ev(
                "d",
                at(4, 0),
                "a",
                json!({"agent_name": "x", "user_id": "u2"}),
            ),
            ev(
                "b",
                at(2, 0),
                "b",
                json!({"pipeline_stage": "s1", "job_id": "j1"}),
            ),
            ev(
                "a",
                at(1, 0),
                "a",
                json!({"agent_name": "x", "user_id": "u1"}),
            ),
            ev(
                "c",
                at(3, 0),
                "a",
                json!({"pipeline_stage": "s1", "job_id": "j2"}),
            ),
        ],
    )
    .await;
    let ids = |text: &str| -> Vec<String> {
        records(text)
            .iter()
            .map(|r| r["event_id"].clone())
            .collect()
    };
    let cases = [
        ("", vec!["a", "b", "c", "d"]),
        ("?model=a", vec!["a", "c", "d"]),
        (
            "?from=2026-10-02T00:00:00Z&to=2026-10-04T00:00:00Z",
            vec!["b", "c"],
        ),
        ("?agent_name=x", vec!["a", "d"]),
        ("?user_id=u2", vec!["d"]),
        ("?pipeline_stage=s1&model=a", vec!["c"]),
        ("?job_id=j1", vec!["b"]),
        ("?model=none", vec![]),
    ];
    for (q, want) in cases {
        let (status, _, text) = export(&app, &format!("/api/usage/events/export{q}"), &key).await;
        assert_eq!(status, 200, "{q}: {text}");
        assert_eq!(ids(&text), want, "{q}");
    }
    // No match still answers the header row.
    let (_, _, text) = export(&app, "/api/usage/events/export?model=none", &key).await;
    assert!(
        text.starts_with("id,tenant_id,event_id,timestamp,model,"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_filters_are_refused_as_the_events_list_refuses_them() {
    let app = spawn_app().await;
    for q in [
        "?from=yesterday",
        "?to=2026-13-01T00:00:00Z",
        "?limit=5",
        "?colour=red",
    ] {
        let list = app.get(&format!("/api/usage/events{q}"), ADMIN).await;
        let exp = app
            .get(&format!("/api/usage/events/export{q}"), ADMIN)
            .await;
        exp.assert_error(400, "invalid_request");
        if q != "?limit=5" {
            assert_eq!(exp.body["error"], list.body["error"], "{q}");
        }
    }
}

#[tokio::test]
async fn the_export_is_refused_when_usage_tracking_is_off() {
    let app = spawn_with(&[("ENABLE_USAGE_TRACKING", "false")]).await;
    app.get("/api/usage/events/export", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
}

#[tokio::test]
async fn another_tenants_key_never_sees_the_rows() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let other = app.create_tenant("other").await;
    let acme = app.create_key("acme", "member").await;
    let theirs = app.create_key("other", "owner").await;
    ingest(
        &app,
        &acme,
        vec![json!({"event_id": "secret-row", "model": "m",
                                    "input_tokens": 1, "output_tokens": 1})],
    )
    .await;
    let (status, _, text) = export(&app, "/api/usage/events/export", &theirs).await;
    assert_eq!(status, 200);
    assert_eq!(records(&text).len(), 0, "{text}");
    assert!(!text.contains("secret-row"));
    // Naming acme from the other tenant's key is refused, by slug path and by header.
    app.get("/api/tenant/acme/usage/events/export", &theirs)
        .await
        .assert_error(403, "forbidden");
    let acme_id = app.get("/api/tenants/acme", ADMIN).await.body["id"].clone();
    let req = app
        .request("GET", "/api/usage/events/export", Some(&theirs))
        .header("X-Tenant-ID", acme_id.as_str().unwrap());
    app.send(req).await.assert_error(403, "forbidden");
    // The admin exporting the other tenant sees none of acme's rows either.
    let path = format!(
        "/api/tenant/{}/usage/events/export",
        other["slug"].as_str().unwrap()
    );
    let (_, _, text) = export(&app, &path, ADMIN).await;
    assert_eq!(records(&text).len(), 0);
}

#[tokio::test]
async fn an_export_of_20000_events_is_complete_and_in_order() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    // Many events share a timestamp, so the order within one comes from arrival (seq).
    for batch in 0..20 {
        let events: Vec<Value> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                json!({"event_id": format!("e{n:05}"),
                       "timestamp": format!("2026-10-01T00:{:02}:{:02}Z", n / 600, (n / 10) % 60),
                       "model": "m", "input_tokens": 1, "output_tokens": 1})
            })
            .collect();
        // As the admin, whom no rate limit slows.
        let r = app
            .post(
                "/api/tenant/acme/usage/events",
                ADMIN,
                json!({ "events": events }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let (status, _, text) = export(&app, "/api/usage/events/export", &key).await;
    assert_eq!(status, 200);
    let ids: Vec<String> = records(&text)
        .iter()
        .map(|r| r["event_id"].clone())
        .collect();
    assert_eq!(ids.len(), 20_000);
    let want: Vec<String> = (0..20_000).map(|n| format!("e{n:05}")).collect();
    assert!(ids == want, "the export is out of order or has gaps");
}

#[tokio::test]
async fn the_export_works_in_the_oss_edition_and_with_billing_on() {
    let mut envs = vec![vec![]];
    // Billing does not run on PostgreSQL yet (the start refuses ENABLE_BILLING there).
    if !crate::helpers::on_postgres() {
        envs.push(vec![
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_BILLING", "true"),
        ]);
    }
    for env in envs {
        let app = spawn_with(&env).await;
        let edition = app.get("/api/features", ADMIN).await.body["edition"].clone();
        let r = app
            .post(
                "/api/usage/events",
                ADMIN,
                json!({"model": "m", "input_tokens": 3, "output_tokens": 4}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let (status, _, body) = export(&app, "/api/usage/events/export", ADMIN).await;
        assert_eq!(status, 200, "{edition}: {body}");
        let rows = records(&body);
        assert_eq!(
            (rows.len(), rows[0]["model"].as_str()),
            (1, "m"),
            "{edition}"
        );
    }
}
