//! The operations of the HTTP API as data: each entry says how a request is served (method,
//! path, handler) and how it is documented (access, query, schemas, error codes). The server
//! registers its routes from these tables and `/openapi.json` is generated from the same
//! tables, so the document cannot name a route that is not served, or miss one that is.
use crate::auth::Access;
use actix_web::http::Method;
use actix_web::{web, Route};

/// Where an operation is mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mount {
    /// At its path as written (`/health`, `/metrics`).
    Root,
    /// Under `/api`.
    Api,
    /// Tenant-scoped: under `/api` and `/api/tenant/{slug}`.
    Tenant,
    /// The gateway's `/v1/...` paths, as written; their errors are in the provider's format.
    Gateway,
}

pub struct Op {
    pub method: Method,
    pub path: &'static str,
    pub mount: Mount,
    pub summary: &'static str,
    /// Who may call it; `register` enforces it before the handler runs.
    pub access: Access,
    pub query: &'static [&'static str],
    /// Component schema of the request body.
    pub body: Option<&'static str>,
    pub ok: u16,
    /// Component schema of the success body (`None`: empty or text).
    pub response: Option<&'static str>,
    /// Error codes beyond the ones every operation of its kind can answer.
    pub errors: &'static [&'static str],
    pub route: fn() -> Route,
}

impl Op {
    pub fn new(method: Method, path: &'static str, mount: Mount, route: fn() -> Route) -> Op {
        Op {
            method,
            path,
            mount,
            summary: "",
            access: Access::AnyToken,
            query: &[],
            body: None,
            ok: 200,
            response: None,
            errors: &[],
            route,
        }
    }
    pub fn doc(mut self, summary: &'static str, access: Access) -> Op {
        self.summary = summary;
        self.access = access;
        self
    }
    pub fn query(mut self, q: &'static [&'static str]) -> Op {
        self.query = q;
        self
    }
    pub fn body(mut self, schema: &'static str) -> Op {
        self.body = Some(schema);
        self
    }
    pub fn ok(mut self, status: u16, schema: Option<&'static str>) -> Op {
        self.ok = status;
        self.response = schema;
        self
    }
    pub fn errors(mut self, codes: &'static [&'static str]) -> Op {
        self.errors = codes;
        self
    }
}

/// Every operation of the API.
pub fn all() -> Vec<Op> {
    let mut ops = Vec::new();
    for area in [
        super::health::ops,
        super::ops::ops,
        super::features::ops,
        super::tenants::ops,
        super::pricing::ops,
        super::members::ops,
        super::keys::ops,
        super::settings::ops,
        super::events::ops,
        super::webhooks::ops,
        super::usage::ops,
        super::billing::ops,
        super::queue::ops,
        super::gateway::ops,
    ] {
        ops.extend(area());
    }
    ops
}

/// Registers operations on `cfg`, one resource per path (under `prefix`), so a known path with
/// another method answers 405 rather than 404.
pub fn register(cfg: &mut web::ServiceConfig, prefix: &str, ops: &[&Op]) {
    register_with(cfg, prefix, ops, false)
}

/// As `register`; `gateway` operations answer errors in the provider's format.
fn register_with(cfg: &mut web::ServiceConfig, prefix: &str, ops: &[&Op], gateway: bool) {
    let mut paths: Vec<&str> = Vec::new();
    for op in ops {
        if !paths.contains(&op.path) {
            paths.push(op.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(format!("{prefix}{path}"));
        let mut table = Vec::new();
        for op in ops.iter().filter(|o| o.path == path) {
            resource = resource.route((op.route)().method(op.method.clone()));
            table.push((op.method.clone(), op.access));
        }
        let table = std::rc::Rc::new(table);
        cfg.service(
            resource.wrap(actix_web::middleware::from_fn(move |req, next| {
                super::access::enforce(table.clone(), gateway, req, next)
            })),
        );
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let ops = all();
    let of = |m: Mount| ops.iter().filter(|o| o.mount == m).collect::<Vec<_>>();
    let (root, api, tenant) = (of(Mount::Root), of(Mount::Api), of(Mount::Tenant));
    register_with(cfg, "", &of(Mount::Gateway), true);
    let (fixed, patterned): (Vec<&Op>, Vec<&Op>) = api
        .iter()
        .chain(&tenant)
        .partition(|op| !op.path.contains('{'));
    register(cfg, "", &root);
    // actix tries services in order, and each pattern it passes costs a regex match (twice per
    // request: routing and the metrics label). Fixed `/api/...` paths, ingest among them, come
    // first as plain string comparisons; a fixed path never overlaps a patterned one.
    register(cfg, "/api", &fixed);
    super::admin_page::configure(cfg);
    cfg.service(web::scope("/api/tenant/{slug}").configure(|c| register(c, "", &tenant)))
        .service(web::scope("/api").configure(|c| register(c, "", &patterned)));
}
