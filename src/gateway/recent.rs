//! The last calls of each tenant, for the admin page's Gateway section: failures included,
//! which usage events do not hold. Kept in memory, a bounded number per tenant, since this
//! process started; metered calls are also durable as usage events.
use crate::tenancy::TenantId;
use crate::time::Micros;
use crate::usage::money::Nanousd;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const PER_TENANT: usize = 50;

#[derive(Clone, Debug)]
pub struct Call {
    pub at: Micros,
    pub path: &'static str,
    pub model: String,
    pub provider: &'static str,
    pub stream: bool,
    pub status: u16,
    /// The error code when tenantry refused or the upstream failed, else `None`.
    pub error: Option<&'static str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The billed cost, for a metered call.
    pub cost: Option<Nanousd>,
    pub duration_ms: u64,
    pub client_disconnected: bool,
    pub usage_missing: bool,
}

#[derive(Default)]
pub struct RecentCalls(Mutex<HashMap<TenantId, VecDeque<Call>>>);

impl RecentCalls {
    pub fn push(&self, tenant: TenantId, call: Call) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let q = m.entry(tenant).or_default();
        if q.len() == PER_TENANT {
            q.pop_front();
        }
        q.push_back(call);
    }

    /// Newest first.
    pub fn list(&self, tenant: TenantId) -> Vec<Call> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&tenant)
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}
