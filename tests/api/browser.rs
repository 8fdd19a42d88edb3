//! The admin page in a real headless Chromium (driven by tests/browser/admin.mjs with
//! playwright-core), against the real server. CI installs Chromium and Node; elsewhere the
//! test says what is missing and passes only when not under CI.
use crate::helpers::{output_text, skip_without, spawn_with, ADMIN};
use crate::upstream::{FakeUpstream, HOSTED_ANTHROPIC_KEY};
use std::path::Path;
use std::process::Command;

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
        let v1 = format!("{}/v1", fake.url);
        let app = spawn_with(&[
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_UPSTREAM_ANTHROPIC", v1.as_str()),
            ("TENANTRY_PROVIDER_KEY_ANTHROPIC", HOSTED_ANTHROPIC_KEY),
        ])
        .await;
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let out = tokio::process::Command::new("node")
            .arg("admin.mjs")
            .arg(&app.address)
            .arg(ADMIN)
            .arg(&shots)
            .arg(viewport)
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
    }
}
