//! In-flight calls per tenant, for `max_concurrent_calls`. A permit is held from before the
//! call goes upstream until its stream has ended and been metered, and gives its place back
//! when dropped, however the call ended.
use crate::tenancy::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Inflight(Mutex<HashMap<TenantId, u32>>);

pub struct Permit {
    table: Arc<Inflight>,
    tenant: TenantId,
}

impl Inflight {
    /// A permit when fewer than `max` of the tenant's calls are in flight.
    pub fn acquire(self: &Arc<Self>, tenant: TenantId, max: u32) -> Option<Permit> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(tenant).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Permit {
            table: self.clone(),
            tenant,
        })
    }

    /// The tenant's calls in flight now.
    pub fn count(&self, tenant: TenantId) -> u32 {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&tenant).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut m = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_tenant_and_given_back_on_drop() {
        let t = Arc::new(Inflight::default());
        let (a, b) = (
            TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            TenantId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        let p1 = t.acquire(a, 2).unwrap();
        let _p2 = t.acquire(a, 2).unwrap();
        assert!(t.acquire(a, 2).is_none());
        assert!(t.acquire(b, 2).is_some(), "another tenant is not affected");
        drop(p1);
        assert_eq!(t.count(a), 1);
        assert!(t.acquire(a, 2).is_some());
    }
}
