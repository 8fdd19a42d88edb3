//! The admin page in a real headless Chromium (driven by tests/browser/admin.mjs with
//! playwright-core), against the real server (and a second one with billing and the queue
//! off). CI installs Chromium and Node; elsewhere the test says what is missing and passes only
//! when not under CI.
use crate::helpers::{output_text, skip_without, spawn_with, ADMIN};
use crate::upstream::{FakeUpstream, HOSTED_ANTHROPIC_KEY};
use actix_web::{web, App, HttpResponse, HttpServer};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A webhook receiver for the Webhooks view's flow: answers 204 and counts what arrives. On a
/// free loopback port, so the server needs `TENANTRY_WEBHOOK_ALLOW_PRIVATE=true` to post to it.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().default_service(web::to(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { HttpResponse::NoContent().finish() }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, count)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_admin_page_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let present = Path::new(&chromium).exists() && have("node") && have("npm");
    let what = format!("{chromium}, node and npm");
    if skip_without(present, &what, "apt-get install chromium nodejs npm") {
        return;
    }
    if !dir.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "npm ci failed");
    }
    // The whole flow at a desktop's size and at a phone's: every view must work at both.
    for viewport in ["1280x800", "390x844"] {
        // The Gateway view's calls table needs real gateway calls: the page's flow makes them
        // with a service key it creates, against the fake provider. Only Anthropic gets an
        // instance key, since the service-key step expects the OpenAI credentials check to fail.
        let fake = FakeUpstream::start();
        let (hook, hooked) = receiver().await;
        let v1 = format!("{}/v1", fake.url);
        let app = spawn_with(&[
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_UPSTREAM_ANTHROPIC", v1.as_str()),
            ("TENANTRY_PROVIDER_KEY_ANTHROPIC", HOSTED_ANTHROPIC_KEY),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
            // The Billing view's flow: last month stays a draft it can still add events to.
            ("ENABLE_BILLING", "true"),
            ("TENANTRY_BILLING_GRACE", "31d"),
            // The Jobs view's flow and the queue across tenants.
            ("ENABLE_HOSTED_QUEUE", "true"),
        ])
        .await;
        // The same page on a server without billing and without the queue must say so, not fail.
        let off = spawn_with(&[("ENABLE_MULTI_TENANT", "true")]).await;
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let out = tokio::process::Command::new("node")
            .arg("admin.mjs")
            .arg(&app.address)
            .arg(ADMIN)
            .arg(&shots)
            .arg(viewport)
            .env("WEBHOOK_RECEIVER", &hook)
            .env("BILLING_OFF_BASE", &off.address)
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        let log = output_text(&out);
        assert!(
            out.status.success(),
            "browser test at {viewport} failed:\n{log}"
        );
        assert!(log.contains("browser test passed"), "{viewport}: {log}");
        // The calls the page listed really went upstream, with the instance's key.
        let seen = fake.requests().await;
        assert_eq!(seen.len(), 3, "{viewport}: the fake saw {seen:?}");
        for r in &seen {
            assert_eq!(r["headers"]["x-api-key"], HOSTED_ANTHROPIC_KEY, "{r}");
        }
        // The test send the page showed as succeeded really reached the receiver.
        let hooks = hooked.load(Ordering::SeqCst);
        assert!(
            hooks >= 1,
            "{viewport}: the receiver got {hooks} deliveries"
        );
    }
}
