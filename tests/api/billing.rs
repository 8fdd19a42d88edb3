//! Billing (contract "Billing"): statements from the rollups to the nano-dollar, the amount due's
//! rounding, period edges, the open -> draft -> final lifecycle under the manual clock with
//! `period_closed`, the background finalizer, CSV, the operator's report and the flag.
use crate::helpers::{app_pg, spawn_tuned, spawn_with, TestApp, ADMIN};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;

const BILLING: &[(&str, &str)] = &[("ENABLE_MULTI_TENANT", "true"), ("ENABLE_BILLING", "true")];

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A JSON number of USD as exact nano-dollars.
fn nanos(v: &Value) -> i128 {
    let s = v.to_string();
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    assert!(
        frac.len() <= 9 && !s.contains(['e', 'E']) && !s.starts_with('-'),
        "{s}"
    );
    let n = |d: &str| {
        d.parse::<i128>()
            .unwrap_or_else(|_| panic!("not a USD amount: {s}"))
    };
    n(whole) * 1_000_000_000 + n(&format!("{frac:0<9}"))
}

async fn billing_app() -> TestApp {
    spawn_tuned(BILLING, |c| {
        c.billing_finalize_every = Duration::from_millis(50)
    })
    .await
}

async fn patch_settings(app: &TestApp, slug: &str, body: Value) {
    let r = app
        .call(
            "PATCH",
            &format!("/api/tenant/{slug}/settings"),
            Some(ADMIN),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn ingest(app: &TestApp, slug: &str, events: Value) -> crate::helpers::Resp {
    app.call(
        "POST",
        &format!("/api/tenant/{slug}/usage/events"),
        Some(ADMIN),
        Some(events),
    )
    .await
}

async fn statement(app: &TestApp, slug: &str, period: &str) -> Value {
    let r = app
        .get(
            &format!("/api/tenant/{slug}/billing/statements/{period}"),
            ADMIN,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn event(model: &str, ts: &str, extra: Value) -> Value {
    let mut e =
        json!({"model": model, "input_tokens": 1000, "output_tokens": 200, "timestamp": ts});
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test]
async fn statement_lines_equal_the_sums_of_the_events_to_the_nano_dollar() {
    let app = billing_app().await;
    app.create_tenant("acme").await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    // Hosted at 10% markup, then 33.3333% (mid-month), then BYO key; priced and client costs,
    // cache tokens, three models (one with a comma and quotes in its name).
    let plans = [
        (
            json!({"execution_mode": "hosted", "markup_percent": 10}),
            "2026-10-02T08:00:00Z",
        ),
        (json!({"markup_percent": 33.3333}), "2026-10-15T08:00:00Z"),
        (json!({"execution_mode": "byo_key"}), "2026-10-18T08:00:00Z"),
    ];
    let mut expected: std::collections::BTreeMap<(String, String), [i128; 7]> = Default::default();
    for (settings, ts) in plans {
        patch_settings(&app, "acme", settings).await;
        let mode = app.get("/api/tenant/acme/settings", ADMIN).await.body["execution_mode"]
            .as_str()
            .unwrap()
            .to_string();
        let batch = json!([
            event(
                "gpt-4o",
                ts,
                json!({"cache_read_tokens": 400, "cache_write_tokens": 100})
            ),
            event("gpt-4o", ts, json!({})),
            event("claude-sonnet-4-5", ts, json!({"cache_read_tokens": 999})),
            event("odd,\"model\"", ts, json!({"cost_usd": 0.000000007})),
            event("odd,\"model\"", ts, json!({"cost_usd": 1.234567891})),
        ]);
        let r = ingest(&app, "acme", json!({"events": batch})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        for (sent, got) in batch
            .as_array()
            .unwrap()
            .iter()
            .zip(r.body["events"].as_array().unwrap())
        {
            let key = (sent["model"].as_str().unwrap().to_string(), mode.clone());
            let e = expected.entry(key).or_default();
            let n = |f: &str| sent[f].as_i64().unwrap_or(0) as i128;
            e[0] += 1;
            e[1] += n("input_tokens");
            e[2] += n("output_tokens");
            e[3] += n("cache_read_tokens");
            e[4] += n("cache_write_tokens");
            e[5] += nanos(&got["estimated_cost_usd"]);
            e[6] += nanos(&got["billed_cost_usd"]);
        }
    }
    let s = statement(&app, "acme", "2026-10").await;
    assert_eq!(
        (s["status"].as_str(), s["currency"].as_str()),
        (Some("open"), Some("USD"))
    );
    assert_eq!(s["from"], "2026-10-01T00:00:00Z");
    assert_eq!(s["to"], "2026-11-01T00:00:00Z");
    let lines = s["lines"].as_array().unwrap();
    assert_eq!(lines.len(), expected.len(), "{s}");
    let mut billed_total = 0;
    for l in lines {
        let key = (
            l["model"].as_str().unwrap().to_string(),
            l["execution_mode"].as_str().unwrap().to_string(),
        );
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected line {l}"));
        let got = [
            l["events"].as_i64().unwrap() as i128,
            l["input_tokens"].as_i64().unwrap() as i128,
            l["output_tokens"].as_i64().unwrap() as i128,
            l["cache_read_tokens"].as_i64().unwrap() as i128,
            l["cache_write_tokens"].as_i64().unwrap() as i128,
            nanos(&l["estimated_cost_usd"]),
            nanos(&l["billed_cost_usd"]),
        ];
        assert_eq!(&got, want, "{key:?}");
        if key.1 == "byo_key" {
            assert_eq!(got[6], 0, "a BYO-key line bills nothing");
        }
        billed_total += got[6];
    }
    // Ordered by billed cost descending, then model.
    let order: Vec<(i128, String)> = lines
        .iter()
        .map(|l| {
            (
                -nanos(&l["billed_cost_usd"]),
                l["model"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert_eq!(nanos(&s["billed_cost_usd"]), billed_total);
    let due = nanos(&s["amount_due_usd"]);
    assert_eq!(due % 10_000_000, 0, "whole cents");
    assert!((due - billed_total).abs() <= 5_000_000);
    // The same figures as the usage stats of the month.
    let stats = app
        .get(
            "/api/tenant/acme/usage/stats?from=2026-10-01T00:00:00Z&to=2026-10-31T23:59:59Z",
            ADMIN,
        )
        .await;
    assert_eq!(
        nanos(&stats.body["totals"]["billed_cost_usd"]),
        billed_total,
        "{}",
        stats.body
    );
    assert_eq!(s["events"], stats.body["totals"]["events"]);
}

#[tokio::test]
async fn amount_due_rounds_half_a_cent_to_the_even_cent_both_ways() {
    let app = billing_app().await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    for (slug, cost, due) in [
        ("down", "0.005", "0"),
        ("upward", "0.015", "0.02"),
        ("even", "0.025", "0.02"),
        ("over", "0.025000001", "0.03"),
    ] {
        app.create_tenant(slug).await;
        patch_settings(&app, slug, json!({"markup_percent": 0})).await;
        let body =
            format!(r#"{{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":{cost}}}"#);
        let r = app
            .send(
                app.request(
                    "POST",
                    &format!("/api/tenant/{slug}/usage/events"),
                    Some(ADMIN),
                )
                .header("content-type", "application/json")
                .body(body),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let s = statement(&app, slug, "2026-10").await;
        assert_eq!(s["billed_cost_usd"].to_string(), cost, "{slug}");
        assert_eq!(s["amount_due_usd"].to_string(), due, "{slug}");
    }
}

#[tokio::test]
async fn events_at_the_edges_of_a_month_fall_in_their_own_month() {
    let app = billing_app().await;
    app.create_tenant("acme").await;
    app.clock.set(at("2026-11-01T06:00:00Z"));
    let r = ingest(
        &app,
        "acme",
        json!({"events": [
            event("last", "2026-10-31T23:59:59.999999Z", json!({"cost_usd": 1})),
            event("first", "2026-11-01T00:00:00Z", json!({"cost_usd": 2})),
        ]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let oct = statement(&app, "acme", "2026-10").await;
    let nov = statement(&app, "acme", "2026-11").await;
    assert_eq!(oct["lines"].as_array().unwrap().len(), 1);
    assert_eq!(oct["lines"][0]["model"], "last");
    assert_eq!(oct["status"], "draft");
    assert_eq!(nov["lines"].as_array().unwrap().len(), 1);
    assert_eq!(nov["lines"][0]["model"], "first");
    assert_eq!(nov["status"], "open");
}

#[tokio::test]
async fn a_statement_goes_open_draft_final_and_then_refuses_events_with_period_closed() {
    let app = billing_app().await;
    app.create_tenant("acme").await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    let one = |ts: &str, cost: f64| json!({"events": [event("m", ts, json!({"cost_usd": cost}))]});
    assert_eq!(
        ingest(&app, "acme", one("2026-10-20T11:00:00Z", 1.0))
            .await
            .status,
        201
    );
    let s = statement(&app, "acme", "2026-10").await;
    assert_eq!(
        (s["status"].as_str(), s["finalized_at"].is_null()),
        (Some("open"), true)
    );

    // In the grace period (default 24 h) a late event still changes the draft.
    app.clock.set(at("2026-11-01T12:00:00Z"));
    assert_eq!(statement(&app, "acme", "2026-10").await["status"], "draft");
    assert_eq!(
        ingest(&app, "acme", one("2026-10-31T23:00:00Z", 2.0))
            .await
            .status,
        201
    );
    let draft = statement(&app, "acme", "2026-10").await;
    assert_eq!(
        (draft["status"].as_str(), draft["events"].as_i64()),
        (Some("draft"), Some(2))
    );

    // Past the grace: final, stored, announced once.
    app.clock.set(at("2026-11-02T00:00:00Z"));
    let fin = statement(&app, "acme", "2026-10").await;
    assert_eq!(fin["status"], "final");
    assert!(fin["finalized_at"].is_string(), "{fin}");
    assert_eq!(fin["lines"], draft["lines"]);
    assert_eq!(fin["billed_cost_usd"], draft["billed_cost_usd"]);

    // A late event now is refused, and with it the whole request; nothing is stored.
    let before = app
        .get(
            "/api/tenant/acme/usage/stats?from=2026-10-01T00:00:00Z&to=2026-11-30T00:00:00Z",
            ADMIN,
        )
        .await
        .body;
    let r = ingest(&app, "acme", one("2026-10-31T23:59:59Z", 5.0)).await;
    r.assert_error(409, "period_closed");
    let r = ingest(
        &app,
        "acme",
        json!({"events": [
            event("m", "2026-11-01T10:00:00Z", json!({"cost_usd": 1})),
            event("m", "2026-10-05T10:00:00Z", json!({"cost_usd": 1})),
        ]}),
    )
    .await;
    r.assert_error(409, "period_closed");
    assert!(
        r.body["message"].as_str().unwrap().contains("events[1]"),
        "{}",
        r.body
    );
    let after = app
        .get(
            "/api/tenant/acme/usage/stats?from=2026-10-01T00:00:00Z&to=2026-11-30T00:00:00Z",
            ADMIN,
        )
        .await
        .body;
    assert_eq!(before, after, "nothing of a refused request is stored");
    // The current month still takes events.
    assert_eq!(
        ingest(&app, "acme", one("2026-11-01T10:00:00Z", 1.0))
            .await
            .status,
        201
    );

    // Later reads answer the stored statement, unchanged.
    app.clock.set(at("2027-03-01T00:00:00Z"));
    let again = statement(&app, "acme", "2026-10").await;
    assert_eq!(again, fin);
    let events = app
        .walk("/api/tenant/acme/events?category=billing", ADMIN, 100)
        .await;
    let finalized: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "statement.finalized")
        .collect();
    assert!(
        finalized
            .iter()
            .filter(|e| e["data"]["period"] == "2026-10")
            .count()
            == 1,
        "{events:?}"
    );
    let oct = finalized
        .iter()
        .find(|e| e["data"]["period"] == "2026-10")
        .unwrap();
    assert_eq!(oct["data"]["amount_due_usd"], fin["amount_due_usd"]);
    assert_eq!(oct["severity"], "info");
}

#[tokio::test]
async fn the_finalizer_stores_statements_nobody_read_and_records_the_event() {
    let app = billing_app().await;
    app.create_tenant("quiet").await;
    app.clock.set(at("2026-09-10T12:00:00Z"));
    let r = ingest(
        &app,
        "quiet",
        json!({"events": [event("m", "2026-09-10T11:00:00Z", json!({"cost_usd": 3}))]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.clock.set(at("2026-10-05T00:00:00Z"));
    let mut found = None;
    for _ in 0..100 {
        let events = app
            .walk("/api/tenant/quiet/events?category=billing", ADMIN, 100)
            .await;
        found = events
            .into_iter()
            .find(|e| e["event_type"] == "statement.finalized");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found = found.expect("the finalizer recorded statement.finalized without a read");
    assert_eq!(found["data"]["period"], "2026-09");
    let s = statement(&app, "quiet", "2026-09").await;
    assert_eq!(s["status"], "final");
    assert_eq!(s["amount_due_usd"].to_string(), "3");
}

#[tokio::test]
async fn statements_list_each_month_with_usage_newest_first_in_pages() {
    let app = billing_app().await;
    app.create_tenant("acme").await;
    for m in ["2026-07", "2026-09", "2026-12"] {
        app.clock.set(at(&format!("{m}-15T00:00:00Z")));
        let r = ingest(&app, "acme", json!({"events": [event("m", &format!("{m}-03T00:00:00Z"), json!({"cost_usd": 0.125}))]})).await;
        assert_eq!(r.status, 201);
    }
    let all = app
        .walk("/api/tenant/acme/billing/statements", ADMIN, 2)
        .await;
    let periods: Vec<_> = all.iter().map(|s| s["period"].as_str().unwrap()).collect();
    assert_eq!(periods, ["2026-12", "2026-09", "2026-07"]);
    let statuses: Vec<_> = all.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["open", "final", "final"]);
    assert!(all[1]["finalized_at"].is_string() && all[0]["finalized_at"].is_null());
    assert_eq!(all[1]["billed_cost_usd"].to_string(), "0.125");
    assert_eq!(
        all[1]["amount_due_usd"].to_string(),
        "0.12",
        "half a cent to even"
    );
}

#[tokio::test]
async fn a_malformed_period_is_400_and_a_month_without_usage_has_no_lines() {
    let app = billing_app().await;
    app.create_tenant("acme").await;
    for bad in ["2026-13", "2026-1", "november", "2026-11-01", "0999-01"] {
        app.get(&format!("/api/tenant/acme/billing/statements/{bad}"), ADMIN)
            .await
            .assert_error(400, "invalid_request");
    }
    app.get("/api/billing/report?period=2026-00", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get(
        "/api/tenant/acme/billing/statements/2026-11?format=pdf",
        ADMIN,
    )
    .await
    .assert_error(400, "invalid_request");
    app.clock.set(at("2026-11-20T00:00:00Z"));
    let s = statement(&app, "acme", "2025-01").await;
    assert_eq!(
        (s["status"].as_str(), s["lines"].as_array().map(Vec::len)),
        (Some("final"), Some(0))
    );
    assert_eq!(s["amount_due_usd"].to_string(), "0");
    let s = statement(&app, "acme", "2026-11").await;
    assert_eq!(
        (s["status"].as_str(), s["lines"].as_array().map(Vec::len)),
        (Some("open"), Some(0))
    );
}

fn parse_csv(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .map(String::from)
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

async fn text(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

#[tokio::test]
async fn statement_and_report_csv_parse_with_a_standard_reader_and_quote_what_needs_it() {
    let app = billing_app().await;
    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "Acme, \"the\" Co", "slug": "acme", "plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.create_tenant("other").await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    let r = ingest(&app, "acme", json!({"events": [
        event("odd,\"model\"", "2026-10-02T00:00:00Z", json!({"cost_usd": 1.5, "cache_read_tokens": 10})),
        event("plain", "2026-10-03T00:00:00Z", json!({"cost_usd": 0.000000001})),
    ]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        ingest(
            &app,
            "other",
            json!({"events": [event("m", "2026-10-04T00:00:00Z", json!({"cost_usd": 2}))]})
        )
        .await
        .status,
        201
    );

    let json_s = statement(&app, "acme", "2026-10").await;
    let (status, ct, body) = text(
        &app,
        "/api/tenant/acme/billing/statements/2026-10?format=csv",
        ADMIN,
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert!(body.contains("\"odd,\"\"model\"\"\""), "{body}");
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 3, "two lines and the total");
    for (row, line) in rows.iter().zip(json_s["lines"].as_array().unwrap()) {
        assert_eq!(row["row_type"], "line");
        assert_eq!(row["model"], line["model"].as_str().unwrap());
        assert_eq!(
            row["execution_mode"],
            line["execution_mode"].as_str().unwrap()
        );
        assert_eq!(row["billed_cost_usd"], line["billed_cost_usd"].to_string());
        assert_eq!(
            row["cache_read_tokens"],
            line["cache_read_tokens"].to_string()
        );
    }
    assert_eq!(rows[2]["row_type"], "total");
    assert_eq!(
        rows[2]["amount_due_usd"],
        json_s["amount_due_usd"].to_string()
    );
    assert_eq!(
        rows[2]["billed_cost_usd"],
        json_s["billed_cost_usd"].to_string()
    );

    let report = app.get("/api/billing/report?period=2026-10", ADMIN).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let (status, ct, body) =
        text(&app, "/api/billing/report?period=2026-10&format=csv", ADMIN).await;
    assert_eq!((status, ct.starts_with("text/csv")), (200, true));
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 2);
    let acme = rows.iter().find(|r| r["slug"] == "acme").unwrap();
    assert_eq!(acme["name"], "Acme, \"the\" Co");
    assert_eq!(acme["plan"], "pro");
    assert_eq!(acme["events"], "2");
    assert_eq!(acme["status"], "open");
    assert_eq!(
        acme["billed_cost_usd"],
        json_s["billed_cost_usd"].to_string()
    );
}

#[tokio::test]
async fn the_report_lists_every_tenant_with_usage_for_the_operator_only() {
    let app = billing_app().await;
    app.create_tenant("big").await;
    app.create_tenant("small").await;
    app.create_tenant("idle").await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    for (slug, cost) in [("big", 10.005), ("small", 0.004)] {
        let r = ingest(
            &app,
            slug,
            json!({"events": [event("m", "2026-10-01T00:00:00Z", json!({"cost_usd": cost}))]}),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    patch_settings(&app, "small", json!({"markup_percent": 0})).await;
    let r = app.get("/api/billing/report?period=2026-10", ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tenants = r.body["tenants"].as_array().unwrap();
    let slugs: Vec<_> = tenants
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["big", "small"],
        "by billed cost, tenants without usage left out"
    );
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["totals"]["tenants"], 2);
    assert_eq!(r.body["totals"]["events"], 2);
    for t in tenants {
        let s = statement(&app, t["slug"].as_str().unwrap(), "2026-10").await;
        assert_eq!(t["billed_cost_usd"], s["billed_cost_usd"]);
        assert_eq!(t["amount_due_usd"], s["amount_due_usd"]);
    }
    // Final: the same figures, from the stored statements.
    app.clock.set(at("2026-11-03T00:00:00Z"));
    let fin = app.get("/api/billing/report?period=2026-10", ADMIN).await;
    assert_eq!(fin.body["status"], "final");
    assert_eq!(fin.body["totals"], r.body["totals"]);
    // Without ?period= it is the current month's.
    assert_eq!(
        app.get("/api/billing/report", ADMIN).await.body["period"],
        "2026-11"
    );
    // Tenant keys, even an owner's, are not the operator.
    let owner = app.create_key("big", "owner").await;
    let r = app.get("/api/billing/report?period=2026-10", &owner).await;
    assert!(r.status == 401 || r.status == 403, "{}", r.status);
}

#[tokio::test]
async fn statements_are_the_callers_tenants_own() {
    let app = billing_app().await;
    app.create_tenant("alpha").await;
    app.create_tenant("bravo").await;
    app.clock.set(at("2026-10-20T12:00:00Z"));
    let r = ingest(
        &app,
        "alpha",
        json!({"events": [event("secret-model", "2026-10-01T00:00:00Z", json!({"cost_usd": 7}))]}),
    )
    .await;
    assert_eq!(r.status, 201);
    let b = app.create_key("bravo", "viewer").await;
    let s = app.get("/api/billing/statements/2026-10", &b).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["lines"], json!([]), "{}", s.body);
    assert!(!s.body.to_string().contains("secret-model"));
    assert_eq!(
        app.get("/api/billing/statements", &b).await.body["items"],
        json!([])
    );
    // Naming tenant a with b's key does not reach a's statements.
    for path in [
        "/api/tenant/alpha/billing/statements/2026-10",
        "/api/tenant/alpha/billing/statements",
    ] {
        app.get(path, &b).await.assert_error(403, "forbidden");
    }
    let alpha = app.get("/api/tenants/alpha", ADMIN).await.body["id"].clone();
    let req = app
        .request("GET", "/api/billing/statements/2026-10", Some(&b))
        .header("X-Tenant-ID", alpha.as_str().unwrap());
    app.send(req).await.assert_error(403, "forbidden");
    let viewer = app.create_key("alpha", "viewer").await;
    let mine = app.get("/api/billing/statements/2026-10", &viewer).await;
    assert_eq!(mine.body["lines"][0]["model"], "secret-model");
}

#[tokio::test]
async fn with_billing_off_every_billing_path_is_403_and_old_events_are_taken() {
    let app = spawn_with(&[("ENABLE_MULTI_TENANT", "true")]).await;
    app.create_tenant("acme").await;
    let viewer = app.create_key("acme", "viewer").await;
    for path in [
        "/api/billing/statements",
        "/api/billing/statements/2026-10",
        "/api/billing/statements/2026-10?format=csv",
    ] {
        app.get(path, &viewer)
            .await
            .assert_error(403, "feature_disabled");
    }
    app.get("/api/billing/report?period=2026-10", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
    app.clock.set(at("2027-01-20T00:00:00Z"));
    let r = ingest(
        &app,
        "acme",
        json!({"events": [event("m", "2026-01-01T00:00:00Z", json!({}))]}),
    )
    .await;
    assert_eq!(
        r.status, 201,
        "no period is closed without billing: {}",
        r.body
    );
}

#[tokio::test]
async fn statements_and_job_usage_are_unchanged_when_retention_deletes_the_raw_events() {
    let app = spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_BILLING", "true"),
            ("TENANTRY_USAGE_RETENTION_DAYS", "30"),
            ("ENABLE_HOSTED_QUEUE", "true"),
        ],
        |c| c.retention_sweep_every = Duration::from_millis(50),
    )
    .await;
    app.create_tenant("acme").await;
    app.clock.set(at("2026-09-20T12:00:00Z"));
    let job = app
        .post("/api/tenant/acme/jobs", ADMIN, json!({"payload": {}}))
        .await
        .body;
    let job_path = format!("/api/tenant/acme/jobs/{}", job["id"].as_str().unwrap());
    let r = ingest(
        &app,
        "acme",
        json!({"events": [
            event("gpt-4o", "2026-09-03T00:00:00Z", json!({"cache_read_tokens": 300, "job_id": job["id"]})),
            event("m", "2026-09-04T00:00:00Z", json!({"cost_usd": 1.005, "job_id": job["id"]})),
            event("m", "2026-09-20T00:00:00Z", json!({"cost_usd": 0.5})),
        ]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let draft = statement(&app, "acme", "2026-09").await;
    let usage = app.get(&job_path, ADMIN).await.body["usage"].clone();
    assert_eq!(usage["events"], 2, "{usage}");
    // Two months later: September is final and its raw events are past retention.
    app.clock.set(at("2026-11-25T12:00:00Z"));
    if let Some(pg) = app_pg(&app).await {
        // Usage retention has no PostgreSQL sweep yet (a leader's duty, docs/SCALE_OUT.md
        // §5.3): delete what it would, the raw events older than 30 days, as it would.
        let cutoff = at("2026-10-26T12:00:00Z").timestamp_micros();
        pg.execute("DELETE FROM usage_events WHERE ts < $1", &[&cutoff])
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = app.get("/api/tenant/acme/usage/events", ADMIN).await.body["items"].clone();
        if left == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {left}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fin = statement(&app, "acme", "2026-09").await;
    assert_eq!(fin["status"], "final");
    for k in [
        "lines",
        "events",
        "input_tokens",
        "cache_read_tokens",
        "estimated_cost_usd",
        "billed_cost_usd",
        "amount_due_usd",
    ] {
        assert_eq!(fin[k], draft[k], "{k}");
    }
    let report = app
        .get("/api/billing/report?period=2026-09", ADMIN)
        .await
        .body;
    assert_eq!(
        report["totals"]["billed_cost_usd"],
        draft["billed_cost_usd"]
    );
    assert_eq!(app.get(&job_path, ADMIN).await.body["usage"], usage);
}
