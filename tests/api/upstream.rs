//! The fake provider (`src/bin/fake_upstream.rs`, a party we do not own) run beside a test
//! server, and a tenantry pointed at it.
use crate::helpers::{spawn_with, TestApp};
use serde_json::Value;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// The instance's own provider keys, as the fake sees them arrive.
pub const HOSTED_OPENAI_KEY: &str = "sk-hosted-openai-0123456789";
pub const HOSTED_ANTHROPIC_KEY: &str = "sk-ant-hosted-0123456789";

pub struct FakeUpstream {
    pub url: String,
    child: Child,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-upstream"))
            .args(["--port", "0", "--workers", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fake-upstream starts");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("fake-upstream prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        FakeUpstream { url, child }
    }

    /// The requests the fake received, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        let r = reqwest::get(format!("{}/_fake/requests", self.url))
            .await
            .expect("fake answers");
        r.json::<Vec<Value>>().await.expect("a JSON list")
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A multi-tenant tenantry whose upstreams are `fake`, with the instance's own keys for
/// OpenAI and Anthropic, and `extra` variables.
pub async fn gateway_app(fake: &FakeUpstream, extra: &[(&str, &str)]) -> TestApp {
    let v1 = format!("{}/v1", fake.url);
    let mut env = vec![
        ("ENABLE_MULTI_TENANT", "true"),
        ("TENANTRY_UPSTREAM_OPENAI", v1.as_str()),
        ("TENANTRY_UPSTREAM_ANTHROPIC", v1.as_str()),
        ("TENANTRY_UPSTREAM_GOOGLE", v1.as_str()),
        ("TENANTRY_PROVIDER_KEY_OPENAI", HOSTED_OPENAI_KEY),
        ("TENANTRY_PROVIDER_KEY_ANTHROPIC", HOSTED_ANTHROPIC_KEY),
    ];
    env.extend_from_slice(extra);
    spawn_with(&env).await
}
