//! Observability: the Prometheus metrics (`/metrics`) and each tenant's request counts and
//! latency histograms (`/api/stats`). Neither decides anything; both only count.
pub mod metrics;
pub mod requests;
