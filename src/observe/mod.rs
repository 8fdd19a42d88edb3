//! Observability: the Prometheus metrics (`/metrics`) and each tenant's request counts and
//! latency histograms (`/api/stats`). Neither decides anything; both only count.
pub mod metrics;
pub mod requests;

use crate::tenancy::TenantId;
use metrics::Metrics;
use requests::RequestStats;
use std::sync::Arc;

/// The observability area: what the HTTP edge and the usage writer count.
#[derive(Clone, Default)]
pub struct Observe {
    metrics: Arc<Metrics>,
    requests: Arc<RequestStats>,
}

impl Observe {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Shared with the usage area, which counts tokens and cost as it ingests.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn requests(&self) -> &RequestStats {
        &self.requests
    }

    /// A deleted tenant's request figures go with it.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.requests.forget(tenant);
    }
}
