//! Per-tenant request statistics for `/api/stats`: counts of requests, allowed and denied, and
//! a latency histogram (HdrHistogram, microseconds, 2 significant digits). Recording takes one
//! short lock per request; a tenant's histogram is about 8 KiB.
use crate::tenancy::TenantId;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

struct TenantStats {
    requests: u64,
    allowed: u64,
    denied: u64,
    latency_us: Histogram<u32>,
}

#[derive(Default)]
pub struct RequestStats(Mutex<HashMap<TenantId, TenantStats>>);

impl RequestStats {
    pub fn record(&self, tenant: TenantId, denied: bool, latency_us: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry(tenant).or_insert_with(|| TenantStats {
            requests: 0,
            allowed: 0,
            denied: 0,
            latency_us: Histogram::new_with_bounds(1, 10_000_000, 2)
                .expect("static histogram bounds are valid"),
        });
        s.requests += 1;
        if denied {
            s.denied += 1;
        } else {
            s.allowed += 1;
        }
        s.latency_us.saturating_record(latency_us.max(1));
    }

    pub fn forget(&self, tenant: TenantId) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    }

    /// The contract's `{"tenants": {id: {...}}}`.
    pub fn json(&self) -> Value {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: f64| (us / 10.0).round() / 100.0;
        let mut out = Map::new();
        for (id, s) in map.iter() {
            let h = &s.latency_us;
            out.insert(
                id.to_string(),
                json!({
                    "requests": s.requests,
                    "allowed": s.allowed,
                    "denied": s.denied,
                    "avg_latency_ms": ms(h.mean()),
                    "p50_ms": ms(h.value_at_quantile(0.50) as f64),
                    "p95_ms": ms(h.value_at_quantile(0.95) as f64),
                    "p99_ms": ms(h.value_at_quantile(0.99) as f64),
                }),
            );
        }
        json!({"tenants": out})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn counts_and_quantiles() {
        let s = RequestStats::default();
        let t = TenantId::from_uuid(Uuid::from_u128(7));
        for i in 1..=100 {
            s.record(t, i > 90, i * 1000);
        }
        let v = s.json();
        let x = &v["tenants"][t.to_string()];
        assert_eq!(
            (
                x["requests"].as_u64(),
                x["allowed"].as_u64(),
                x["denied"].as_u64()
            ),
            (Some(100), Some(90), Some(10))
        );
        let p50 = x["p50_ms"].as_f64().unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        let p99 = x["p99_ms"].as_f64().unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
    }
}
