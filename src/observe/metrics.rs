//! Prometheus series for `/metrics`: requests by tenant and status, rate-limited requests,
//! usage tokens and cost by tenant, and request duration by route pattern (never raw paths,
//! so label sets stay bounded by tenants and routes).
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub tokens: IntCounterVec,
    pub cost_usd: CounterVec,
    pub duration: HistogramVec,
    /// On PostgreSQL, by replica id: what an operator of several replicas watches (see `Replica`).
    replica: Vec<(&'static str, IntGaugeVec)>,
}

/// One replica's state on PostgreSQL, as `/metrics` shows it.
pub struct Replica {
    pub id: String,
    /// 1 while this replica runs the leader's duties.
    pub leader: bool,
    /// Replicas with a recent heartbeat, this one included.
    pub alive: u32,
    /// 1 while the cache listener is fresh (else access is read from the store).
    pub caches_fresh: bool,
    /// Rate-limit decisions made from memory because the database did not answer.
    pub rate_fallbacks: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tenantry_requests_total",
                "Requests by tenant and HTTP status",
            ),
            &["tenant_id", "status"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "tenantry_rate_limited_total",
                "Requests refused by a tenant's rate limit",
            ),
            &["tenant_id"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new(
                "tenantry_usage_tokens_total",
                "Metered LLM tokens by tenant",
            ),
            &["tenant_id", "kind"],
        )
        .expect("valid metric");
        let cost_usd = CounterVec::new(
            Opts::new(
                "tenantry_usage_cost_usd_total",
                "Estimated LLM cost in USD by tenant (exact values are in /api/usage/stats)",
            ),
            &["tenant_id"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tenantry_request_duration_seconds",
                "Request duration by route pattern",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        for c in [&requests, &rate_limited, &tokens] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(cost_usd.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        let replica = [
            (
                "tenantry_replica_leader",
                "1 while this replica runs the leader's background duties",
            ),
            (
                "tenantry_replicas_alive",
                "Replicas with a heartbeat in the last 10 s",
            ),
            (
                "tenantry_replica_caches_fresh",
                "1 while this replica's cache listener is fresh",
            ),
            (
                "tenantry_rate_limit_fallbacks",
                "Rate-limit decisions made in memory because PostgreSQL did not answer",
            ),
        ]
        .into_iter()
        .map(|(name, help)| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["replica"]).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            (name, g)
        })
        .collect();
        Metrics {
            replica,
            registry,
            requests,
            rate_limited,
            tokens,
            cost_usd,
            duration,
        }
    }
}

impl Metrics {
    /// Sets the replica series (shown only once set, so a SQLite server has none).
    pub fn set_replica(&self, r: &Replica) {
        let values = [
            i64::from(r.leader),
            i64::from(r.alive),
            i64::from(r.caches_fresh),
            i64::try_from(r.rate_fallbacks).unwrap_or(i64::MAX),
        ];
        for ((_, g), v) in self.replica.iter().zip(values) {
            g.with_label_values(&[&r.id]).set(v);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
