//! The bundled admin page: served at / and /admin/ with the right types, ETags and the CSP.
use crate::helpers::spawn_app;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_etags_and_csp() {
    let app = spawn_app().await;
    for (path, ty) in [
        ("/", "text/html"),
        ("/admin/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/api.js", "text/javascript"),
        ("/ui/views.js", "text/javascript"),
        ("/ui/ui.js", "text/javascript"),
        ("/ui/format.js", "text/javascript"),
        ("/ui/common.js", "text/javascript"),
        ("/ui/chart.js", "text/javascript"),
        ("/ui/tenants.js", "text/javascript"),
        ("/ui/tenant.js", "text/javascript"),
        ("/ui/settings.js", "text/javascript"),
        ("/ui/usage.js", "text/javascript"),
        ("/ui/gateway.js", "text/javascript"),
        ("/ui/webhooks.js", "text/javascript"),
        ("/ui/billing.js", "text/javascript"),
        ("/ui/jobs.js", "text/javascript"),
        ("/ui/instance.js", "text/javascript"),
        ("/ui/service.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let res = app.request("GET", path, None).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ty),
            "{path}"
        );
        assert_eq!(h["content-security-policy"], "default-src 'self'", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-cache");
        let etag = h["etag"].to_str().unwrap().to_string();
        let again = app
            .request("GET", path, None)
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let html = app
        .request("GET", "/", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn the_favicon_is_served_as_an_icon_that_revalidates() {
    let app = spawn_app().await;
    let res = app
        .request("GET", "/favicon.ico", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/x-icon");
    assert_eq!(h["content-security-policy"], "default-src 'self'");
    assert_eq!(h["cache-control"], "no-cache");
    let body = res.bytes().await.unwrap();
    // An ICO file: reserved 0, type 1 (icon), at least one image; small enough to send on every load.
    assert_eq!(&body[..4], &[0, 0, 1, 0], "ICO header");
    assert!(body.len() < 4096, "{} bytes", body.len());
    let again = app
        .request("GET", "/favicon.ico", None)
        .header("If-None-Match", h["etag"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn nothing_outside_static_is_served() {
    let app = spawn_app().await;
    for path in [
        "/ui/..%2FCargo.toml",
        "/ui/nope.js",
        "/ui/index.html",
        "/ui/%2e%2e%2fsrc%2flib.rs",
    ] {
        let r = app.call("GET", path, None, None).await;
        r.assert_error(404, "not_found");
    }
}
