//! The gateway: OpenAI- and Anthropic-compatible calls made with the tenant's provider key and
//! metered from the provider's own usage. An application changes its SDK's `base_url`; the
//! provider key never leaves tenantry. `call.rs` makes a call, `relay.rs` streams one and
//! records what every call cost; `meter.rs` reads usage, `route.rs` picks the upstream.
mod call;
mod inflight;
pub mod meter;
mod recent;
mod relay;
pub mod route;

pub use recent::Call;
pub use relay::Relay;
pub use route::{Api, Provider};

use crate::clock::Clock;
use crate::config::Upstreams;
use crate::error::ApiError;
use crate::events::Events;
use crate::settings::TenantSettings;
use crate::tenancy::TenantCtx;
use crate::time::{to_micros, Micros};
use crate::usage::money::Nanousd;
use crate::usage::service::Usage;
use bytes::Bytes;
use inflight::Inflight;
use recent::RecentCalls;
use std::cell::RefCell;
use std::sync::Arc;

/// The gateway area: the upstreams, the calls in flight and the recent calls of each tenant.
/// It reads settings and keys from the settings area and records through the usage area.
#[derive(Clone)]
pub struct Gateway {
    upstreams: Arc<Upstreams>,
    settings: TenantSettings,
    usage: Usage,
    events: Events,
    clock: Arc<dyn Clock>,
    inflight: Arc<Inflight>,
    recent: Arc<RecentCalls>,
}

/// The labels an application puts on a call with `X-Tenantry-*` headers.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    pub user: Option<String>,
    pub agent: Option<String>,
    pub stage: Option<String>,
    pub job: Option<String>,
}

/// A call as the HTTP edge hands it over.
pub struct CallRequest {
    pub api: Api,
    pub body: Bytes,
    /// The provider's own request headers that pass through (`anthropic-version`, ...).
    pub headers: Vec<(&'static str, String)>,
    pub labels: Labels,
}

/// What to answer: the upstream's status, headers and body (whole or streamed).
pub struct Answer {
    pub status: u16,
    /// The upstream's headers to pass back; hop-by-hop ones are left out.
    pub headers: Vec<(String, Bytes)>,
    /// The tenant's limit level before the call (`ok`, `warning`, `exceeded`).
    pub limit_status: &'static str,
    pub body: AnswerBody,
}

pub enum AnswerBody {
    /// A whole answer; `cost` is the billed cost of a metered one.
    Whole {
        body: Bytes,
        cost: Option<Nanousd>,
    },
    Stream(Relay),
}

/// One model of `GET /v1/models`.
pub struct Model {
    pub id: String,
    pub owned_by: &'static str,
}

thread_local! {
    /// One client per worker thread: each keeps its pool of upstream connections on the
    /// runtime of the thread that uses them.
    static CLIENT: RefCell<Option<reqwest::Client>> = const { RefCell::new(None) };
}

impl Gateway {
    pub fn new(
        upstreams: Upstreams,
        settings: TenantSettings,
        usage: Usage,
        events: Events,
        clock: Arc<dyn Clock>,
    ) -> Gateway {
        Gateway {
            upstreams: Arc::new(upstreams),
            settings,
            usage,
            events,
            clock,
            inflight: Arc::default(),
            recent: Arc::default(),
        }
    }

    fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    fn client(&self) -> Result<reqwest::Client, ApiError> {
        let connect = self.upstreams.connect_timeout;
        CLIENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(client) = c.as_ref() {
                return Ok(client.clone());
            }
            let client = reqwest::Client::builder()
                .connect_timeout(connect)
                .tcp_nodelay(true)
                // A redirect would carry the provider key to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(512)
                .build()
                .map_err(ApiError::internal)?;
            *c = Some(client.clone());
            Ok(client)
        })
    }

    /// The tenant's recent calls, newest first.
    pub fn recent_calls(&self, ctx: &TenantCtx) -> Result<Vec<Call>, ApiError> {
        ctx.require(crate::auth::Action::Read)?;
        Ok(self.recent.list(ctx.id()))
    }

    /// The tenant's calls in flight now.
    pub fn in_flight(&self, ctx: &TenantCtx) -> Result<u32, ApiError> {
        ctx.require(crate::auth::Action::Read)?;
        Ok(self.inflight.count(ctx.id()))
    }

    /// `GET /v1/models`: `allowed_models` when set, else every priced model of a provider
    /// this tenant has a key for.
    pub async fn models(&self, ctx: &TenantCtx) -> Result<Vec<Model>, ApiError> {
        ctx.require(crate::auth::Action::Ingest)?;
        let provider_of = |m: &str| {
            route::route(Api::ChatCompletions, m, &self.upstreams)
                .ok()
                .map(|r| r.provider.as_str())
        };
        let current = self.settings.current(ctx.id());
        let mut models: Vec<Model> = match &current.settings.allowed_models {
            Some(allowed) => allowed
                .iter()
                .map(|m| Model {
                    id: m.clone(),
                    owned_by: provider_of(m).unwrap_or("unknown"),
                })
                .collect(),
            None => {
                let names = Provider::ALL.map(Provider::as_str);
                let keyed = self.settings.providers_with_keys(ctx, &names).await?;
                self.usage
                    .priced_models()
                    .into_iter()
                    .filter_map(|m| {
                        let p = provider_of(&m)?;
                        keyed
                            .iter()
                            .any(|k| k == p)
                            .then_some(Model { id: m, owned_by: p })
                    })
                    .collect()
            }
        };
        models.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(models)
    }
}
