//! Which tenant's jobs a lease takes next, in memory: a rotation among tenants with ready jobs,
//! each taking up to its plan's weight (`basic` 1, `pro` 2, `enterprise` 4) per turn, skipping a
//! tenant at its `max_running_jobs`. The database is asked only for the jobs of the tenant whose
//! turn it is, so a lease costs the same with 10 queued jobs or a million.
//!
//! Also the per-tenant counts by status, so counting never reads the jobs table. Both are
//! rebuilt from the database at start; every change of a job's status goes through here.
use super::job::Status;
use crate::tenancy::TenantId;
use crate::time::Micros;
use std::collections::{HashMap, VecDeque};

#[derive(Default, Debug)]
pub struct TenantQueues {
    /// Queue name -> the earliest `run_at` of its waiting jobs (a lower bound: a queue may have
    /// none left; the lease that finds it empty asks the database and corrects it).
    pub waiting: HashMap<String, Micros>,
    pub counts: [i64; 6],
}

impl TenantQueues {
    pub fn running(&self) -> i64 {
        self.counts[index(Status::Running)]
    }
}

#[derive(Default, Debug)]
pub struct Schedule {
    pub tenants: HashMap<TenantId, TenantQueues>,
    /// Tenants with waiting jobs, in turn order; the front's turn is on.
    ring: VecDeque<TenantId>,
    /// Jobs the front tenant has taken in its current turn.
    taken: u32,
    /// No live lease ends before this (a lower bound; `None`: no job is running), so a lease
    /// asks the database for expired leases only when one may have expired.
    pub next_expiry: Option<Micros>,
}

pub fn index(s: Status) -> usize {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Schedule {
    /// A job was enqueued (or put back) for `queue`, to run at `run_at`.
    pub fn waiting(&mut self, tenant: TenantId, queue: &str, run_at: Micros) {
        let t = self.tenants.entry(tenant).or_default();
        match t.waiting.get_mut(queue) {
            Some(at) => *at = (*at).min(run_at),
            None => {
                t.waiting.insert(queue.to_string(), run_at);
            }
        }
        if !self.ring.contains(&tenant) {
            self.ring.push_back(tenant);
        }
    }

    pub fn count(&mut self, tenant: TenantId, from: Option<Status>, to: Option<Status>) {
        let t = self.tenants.entry(tenant).or_default();
        if let Some(s) = from {
            t.counts[index(s)] -= 1;
        }
        if let Some(s) = to {
            t.counts[index(s)] += 1;
        }
    }

    /// A queue that the database says has no waiting jobs (`None`) or none before `next`.
    pub fn correct(&mut self, tenant: TenantId, queue: &str, next: Option<Micros>) {
        if let Some(t) = self.tenants.get_mut(&tenant) {
            match next {
                Some(at) => {
                    t.waiting.insert(queue.to_string(), at);
                }
                None => {
                    t.waiting.remove(queue);
                }
            }
            if t.waiting.is_empty() {
                self.ring.retain(|x| *x != tenant);
            }
        }
    }

    /// The queues of `tenant` with jobs due by `now`, among `only` (all when `None`).
    pub fn due(&self, tenant: TenantId, now: Micros, only: Option<&[String]>) -> Vec<String> {
        let Some(t) = self.tenants.get(&tenant) else {
            return Vec::new();
        };
        let mut qs: Vec<String> = t
            .waiting
            .iter()
            .filter(|(q, at)| **at <= now && only.is_none_or(|o| o.contains(q)))
            .map(|(q, _)| q.clone())
            .collect();
        qs.sort();
        qs
    }

    /// The earliest instant a waiting job of any tenant (among `only` queues) is due, for a
    /// long poll's wake-up.
    pub fn next_due(&self, only: Option<&[String]>, tenant: Option<TenantId>) -> Option<Micros> {
        self.tenants
            .iter()
            .filter(|(id, _)| tenant.is_none_or(|t| t == **id))
            .flat_map(|(_, t)| t.waiting.iter())
            .filter(|(q, _)| only.is_none_or(|o| o.contains(q)))
            .map(|(_, at)| *at)
            .min()
    }

    /// Whose turn it is, and how many jobs it has taken in this turn.
    pub fn front(&self) -> Option<(TenantId, u32)> {
        self.ring.front().map(|t| (*t, self.taken))
    }

    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    /// The front tenant passes its turn (nothing due, or at its running limit).
    pub fn skip(&mut self) {
        if !self.ring.is_empty() {
            self.ring.rotate_left(1);
        }
        self.taken = 0;
    }

    /// `tenant`, whose turn it was, took `n` jobs; its turn ends once it has taken `weight` in
    /// it, or when it had fewer to give than asked (`short`). Taking may have emptied its
    /// queues and removed it from the ring: the next tenant's turn has begun already.
    pub fn took(&mut self, tenant: TenantId, n: u32, weight: u32, short: bool) {
        if self.ring.front() != Some(&tenant) {
            self.taken = 0;
            return;
        }
        self.taken += n;
        if self.taken >= weight || short {
            self.skip();
        }
    }

    /// A lease was granted or extended to end at `at`.
    pub fn lease_until(&mut self, at: Micros) {
        self.next_expiry = Some(self.next_expiry.map_or(at, |e| e.min(at)));
    }

    /// Whether a lease may have expired by `now`.
    pub fn may_have_expired(&self, now: Micros) -> bool {
        self.next_expiry.is_some_and(|e| e <= now)
    }

    pub fn forget(&mut self, tenant: TenantId) {
        self.tenants.remove(&tenant);
        self.ring.retain(|x| *x != tenant);
    }
}
