//! Logs: one structured line per request, and no secret in any line (checked with canaries).
use crate::helpers::Process;

const ADMIN: &str = "canary-admin-token-7f3a9c";
const ENC: &str = "canary-encryption-key-1b2c";
const INSTANCE: &str = "sk-canary-instance-key-9d8e";
const BYO: &str = "sk-canary-byo-key-5a6b7c8d";

async fn run_with(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(
        dir.path(),
        &[
            ("TENANTRY_ADMIN_TOKEN", ADMIN),
            ("ENCRYPTION_KEY", ENC),
            ("TENANTRY_PROVIDER_KEY_OPENAI", INSTANCE),
            ("TENANTRY_LOG", "debug"),
            ("TENANTRY_LOG_FORMAT", format),
        ],
    );
    let url = server.url.clone();
    let c = reqwest::Client::new();
    let call = |m: reqwest::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
        let mut r = c.request(m, format!("{url}{path}")).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    use reqwest::Method;
    let key: serde_json::Value = call(
        Method::POST,
        "/api/keys",
        ADMIN,
        Some(serde_json::json!({"name": "k", "role": "service"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    call(
        Method::PUT,
        "/api/settings/provider-keys/openai",
        ADMIN,
        Some(serde_json::json!({"api_key": BYO})),
    )
    .await
    .unwrap();
    call(Method::GET, "/api/credentials/openai", &key, None)
        .await
        .unwrap();
    call(
        Method::PATCH,
        "/api/settings",
        ADMIN,
        Some(serde_json::json!({"execution_mode": "byo_key"})),
    )
    .await
    .unwrap();
    call(Method::GET, "/api/credentials/openai", &key, None)
        .await
        .unwrap();
    call(
        Method::POST,
        "/api/usage/events",
        &key,
        Some(serde_json::json!({"model": "m", "input_tokens": 1, "output_tokens": 1})),
    )
    .await
    .unwrap();
    call(
        Method::PUT,
        "/api/settings/provider-keys/openai",
        ADMIN,
        Some(serde_json::json!({"api_key": [BYO]})),
    )
    .await
    .unwrap();
    call(Method::GET, "/api/tenants", &format!("{ADMIN}-wrong"), None)
        .await
        .unwrap();
    call(Method::GET, "/api/members", &key, None).await.unwrap();
    server.child.kill().unwrap();
    let (_, text) = server.wait();
    for canary in [ADMIN, ENC, INSTANCE, BYO, key.as_str()] {
        assert!(!text.contains(canary), "{canary} reached the log:\n{text}");
    }
    text
}

#[tokio::test]
async fn no_secret_reaches_a_text_log_line() {
    let text = run_with("text").await;
    let requests: Vec<_> = text
        .lines()
        .filter(|l| l.contains("request_id") && l.contains("route"))
        .collect();
    assert!(requests.len() >= 9, "one line per request:\n{text}");
    assert!(requests
        .iter()
        .any(|l| l.contains("tenant_id") && l.contains("status") && l.contains("latency_us")));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let text = run_with("json").await;
    let requests: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 9, "{text}");
    let line = &requests[requests.len() - 1]["fields"];
    for f in [
        "request_id",
        "method",
        "route",
        "status",
        "tenant_id",
        "latency_us",
    ] {
        assert!(!line[f].is_null(), "{f} missing in {line}");
    }
}

/// A commit that SQLite refuses answers 500 `internal` without detail, and the log line says why.
#[tokio::test]
async fn a_failed_usage_commit_logs_its_sqlite_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(dir.path(), &[("TENANTRY_ADMIN_TOKEN", ADMIN)]);
    let db = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON usage_events
         BEGIN SELECT RAISE(ABORT, 'the disk said no'); END;",
    )
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/usage/events", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"model": "m", "input_tokens": 1, "output_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "internal");
    assert!(!body.to_string().contains("disk said no"), "{body}");
    server.child.kill().unwrap();
    let (_, text) = server.wait();
    let line = text
        .lines()
        .find(|l| l.contains("usage commit failed"))
        .unwrap_or_else(|| panic!("no commit failure logged:\n{text}"));
    assert!(line.contains("the disk said no"), "{line}");
}

/// A start with a generated admin token, its stderr collected.
async fn first_start(format: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(
        dir.path(),
        &[("TENANTRY_LOG", "info"), ("TENANTRY_LOG_FORMAT", format)],
    );
    let url = server.url.clone();
    reqwest::get(format!("{url}/health")).await.unwrap();
    server.child.kill().unwrap();
    let (_, text) = server.wait();
    (url, text)
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let (_, text) = first_start("text").await;
    assert!(text.contains("request"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape codes in:\n{text}");
}

#[tokio::test]
async fn in_json_mode_every_line_is_json_and_the_generated_token_appears_once() {
    let (url, text) = first_start("json").await;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["fields"]["url"] == url.as_str()),
        "{text}"
    );
    let tokens: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["fields"]["admin_token"].as_str())
        .collect();
    assert_eq!(tokens.len(), 1, "{text}");
    assert_eq!(text.matches(tokens[0]).count(), 1, "shown once:\n{text}");
    assert!(lines.iter().any(|v| v["level"] == "WARN"
        && v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ENCRYPTION_KEY is not set"))));
}
