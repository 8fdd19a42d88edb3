//! Behind a reverse proxy (`TENANTRY_TRUSTED_PROXIES`): the admin-token throttle and the
//! request log count the client the proxy names, not the proxy.
use crate::helpers::Process;

const ADMIN: &str = "proxy-admin-token-0123456789";

async fn features(url: &str, token: &str, forwarded_for: Option<&str>) -> u16 {
    let mut r = reqwest::Client::new()
        .get(format!("{url}/api/features"))
        .bearer_auth(token);
    if let Some(f) = forwarded_for {
        r = r.header("X-Forwarded-For", f);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_guessing_client_does_not_lock_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(
        dir.path(),
        &[
            ("TENANTRY_ADMIN_TOKEN", ADMIN),
            ("TENANTRY_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
            ("TENANTRY_LOG", "info"),
        ],
    );
    let url = server.url.clone();
    // The guesser tries to hide behind a forged entry; the proxy appended the real address.
    let guesser = "6.6.6.6, 203.0.113.7";
    for _ in 0..10 {
        assert_eq!(
            features(&url, "wrong-token-0123456789", Some(guesser)).await,
            401
        );
    }
    assert_eq!(
        features(&url, ADMIN, Some(guesser)).await,
        429,
        "the guesser is throttled"
    );
    assert_eq!(
        features(&url, ADMIN, Some("198.51.100.9, 10.0.0.2")).await,
        200,
        "another client behind the same proxies is not"
    );
    server.child.kill().unwrap();
    let (_, log) = server.wait();
    assert!(log.contains("client=203.0.113.7"), "{log}");
    assert!(log.contains("client=198.51.100.9"), "{log}");
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(
        dir.path(),
        &[("TENANTRY_ADMIN_TOKEN", ADMIN), ("TENANTRY_LOG", "info")],
    );
    let url = server.url.clone();
    // A client naming a new address each time still counts as the one it is.
    for i in 0..10 {
        let forged = format!("192.0.2.{i}");
        assert_eq!(
            features(&url, "wrong-token-0123456789", Some(&forged)).await,
            401
        );
    }
    assert_eq!(features(&url, ADMIN, Some("192.0.2.99")).await, 429);
    server.child.kill().unwrap();
    let (_, log) = server.wait();
    assert!(!log.contains("client=192.0.2."), "{log}");
    assert!(log.contains("client=127.0.0.1"), "{log}");
}
