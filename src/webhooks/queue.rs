//! The delivery worker's bookkeeping, in memory and without I/O: which deliveries are claimed,
//! each endpoint's queue of deliveries read ahead, the places taken (`MAX_IN_FLIGHT` in all,
//! `PER_ENDPOINT` per endpoint) and the endpoints held back after a failure. The worker reads
//! rows, asks what may start, and reports what was answered and what the recorder wrote.
use super::store::Due;
use crate::time::Micros;
use std::collections::{HashMap, HashSet, VecDeque};

pub const MAX_IN_FLIGHT: usize = 64;
pub const PER_ENDPOINT: usize = 4;
/// Deliveries read ahead per endpoint: one refill read serves this many sends. The queue is
/// read again when it is half empty.
pub const READ_AHEAD: usize = 64;
/// At most this many read ahead across all endpoints, so many endpoints with backlogs (or
/// receivers that are down) hold a bounded number of rows in memory.
pub const MAX_QUEUED: usize = 4096;

#[derive(Default)]
pub struct Queues {
    /// Deliveries read ahead or being sent, until their outcome is recorded: never taken twice.
    claimed: HashSet<String>,
    /// How many of `claimed` each endpoint has.
    held: HashMap<String, usize>,
    /// Read ahead, per endpoint, oldest due first.
    queued: HashMap<String, VecDeque<Due>>,
    queued_total: usize,
    /// Requests being sent now, per endpoint and in all.
    sending: HashMap<String, usize>,
    sending_total: usize,
    /// An endpoint found a queued delivery but no free place overall: look at every queue
    /// when a place frees, not only the answered request's endpoint.
    starved: bool,
    /// Endpoints whose last attempt failed, until when (app clock): their other due
    /// deliveries wait instead of failing one after another against a receiver that is down.
    paused: HashMap<String, Micros>,
    /// Deliveries recorded (and released) since the current read began: the read may have
    /// seen them before their outcome committed, so they are not taken from it (they would go
    /// out twice). Emptied when a read begins; a row released before that was committed
    /// before the read.
    recorded: HashSet<String>,
    /// The outbox generation the queued rows (their URL and secrets) were read in.
    generation: u64,
}

impl Queues {
    /// A read of due rows begins.
    pub fn begin_read(&mut self) {
        self.recorded.clear();
    }

    /// Lifts the hold on endpoints whose owner asked to send now (a test send, a retry).
    pub fn resume(&mut self, endpoints: impl IntoIterator<Item = String>) {
        for e in endpoints {
            self.paused.remove(&e);
        }
    }

    /// Drops what was read ahead in an older outbox generation (an endpoint changed since:
    /// its URL, filter or secrets); returns the endpoints to read again.
    pub fn set_generation(&mut self, generation: u64) -> Vec<String> {
        if self.generation == generation {
            return Vec::new();
        }
        self.generation = generation;
        self.queued_total = 0;
        let queued = std::mem::take(&mut self.queued);
        let mut again = Vec::with_capacity(queued.len());
        for (endpoint, rows) in queued {
            for d in rows {
                self.claimed.remove(&d.id);
                unhold(&mut self.held, &endpoint);
            }
            again.push(endpoint);
        }
        again
    }

    /// Queues what a read found that no one holds and was not recorded while it ran.
    pub fn claim(&mut self, rows: Vec<Due>) {
        for d in rows {
            if self.queued_total >= MAX_QUEUED
                || self.claimed.contains(&d.id)
                || self.recorded.contains(&d.id)
            {
                continue;
            }
            self.claimed.insert(d.id.clone());
            *self.held.entry(d.endpoint_id.clone()).or_default() += 1;
            self.queued_total += 1;
            let queue = self.queued.entry(d.endpoint_id.clone()).or_default();
            queue.push_back(d);
        }
    }

    /// The rung endpoints whose queue runs low, each with how many rows to read: its claimed
    /// ones (still due until recorded, and skipped) and room for `READ_AHEAD` more.
    pub fn refills(&self, rung: &HashSet<String>) -> Vec<(String, i64)> {
        if self.queued_total >= MAX_QUEUED {
            return Vec::new();
        }
        rung.iter()
            .filter_map(|e| {
                let queued = self.queued.get(e).map_or(0, VecDeque::len);
                if queued >= READ_AHEAD / 2 {
                    return None;
                }
                let held = self.held.get(e).copied().unwrap_or(0);
                Some((e.clone(), (held + READ_AHEAD - queued) as i64))
            })
            .collect()
    }

    /// The endpoints with deliveries queued.
    pub fn endpoints(&self) -> Vec<String> {
        self.queued.keys().cloned().collect()
    }

    /// Takes the queued deliveries of `endpoints` that may start at `now`, taking their
    /// places; also returns the endpoints whose queue ran low (to be read again).
    pub fn start(
        &mut self,
        endpoints: impl IntoIterator<Item = String>,
        now: Micros,
    ) -> (Vec<Due>, Vec<String>) {
        let (mut start, mut low) = (Vec::new(), Vec::new());
        for endpoint in endpoints {
            if self.paused.get(&endpoint).is_some_and(|until| *until > now) {
                continue;
            }
            self.paused.remove(&endpoint);
            loop {
                let busy = self.sending.get(&endpoint).copied().unwrap_or(0);
                let Some(queue) = self.queued.get_mut(&endpoint) else {
                    break;
                };
                if busy >= PER_ENDPOINT {
                    break;
                }
                if self.sending_total >= MAX_IN_FLIGHT {
                    self.starved = true;
                    break;
                }
                let Some(d) = queue.pop_front() else { break };
                if queue.len() < READ_AHEAD / 2 && low.last() != Some(&endpoint) {
                    low.push(endpoint.clone());
                }
                if queue.is_empty() {
                    self.queued.remove(&endpoint);
                }
                self.queued_total -= 1;
                self.sending_total += 1;
                *self.sending.entry(endpoint.clone()).or_default() += 1;
                start.push(d);
            }
        }
        (start, low)
    }

    /// A request of `endpoint` was answered: its place frees at once (the delivery stays
    /// claimed until its outcome is recorded); a failure holds the endpoint back `until`, a
    /// success lets it go. True when every queue should be looked at, not only this one's.
    pub fn answered(&mut self, endpoint: &str, until: Option<Micros>) -> bool {
        self.sending_total -= 1;
        unhold(&mut self.sending, endpoint);
        match until {
            Some(t) => self.paused.insert(endpoint.to_string(), t),
            None => self.paused.remove(endpoint),
        };
        std::mem::take(&mut self.starved)
    }

    /// The recorder wrote these deliveries' outcomes (delivery, endpoint): they may be read
    /// and taken again (a retry coming due, a manual retry).
    pub fn release(&mut self, written: Vec<(String, String)>) {
        for (id, endpoint) in written {
            self.claimed.remove(&id);
            unhold(&mut self.held, &endpoint);
            self.recorded.insert(id);
        }
    }
}

fn unhold(counts: &mut HashMap<String, usize>, endpoint: &str) {
    if let Some(n) = counts.get_mut(endpoint) {
        *n -= 1;
        if *n == 0 {
            counts.remove(endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: &str, endpoint: &str) -> Due {
        Due {
            id: id.into(),
            endpoint_id: endpoint.into(),
            owner: crate::tenancy::DEFAULT_TENANT_ID,
            event_id: id.into(),
            event_type: "t".into(),
            payload: "{}".into(),
            attempts: 0,
            url: "http://x/".into(),
            format: "standard".into(),
            created_at: 0,
            secrets: (Vec::new(), None, None),
        }
    }

    fn rows(n: usize, endpoint: &str) -> Vec<Due> {
        (0..n)
            .map(|i| due(&format!("{endpoint}{i}"), endpoint))
            .collect()
    }

    fn ids(v: &[Due]) -> Vec<&str> {
        v.iter().map(|d| d.id.as_str()).collect()
    }

    fn e(s: &str) -> [String; 1] {
        [s.to_string()]
    }

    #[test]
    fn an_endpoint_gets_four_at_once_and_the_next_as_soon_as_one_is_answered() {
        let mut q = Queues::default();
        q.claim(rows(6, "a"));
        let (started, low) = q.start(e("a"), 0);
        assert_eq!(ids(&started), ["a0", "a1", "a2", "a3"]);
        assert_eq!(low, ["a"], "fewer than half of READ_AHEAD left");
        assert!(q.start(e("a"), 0).0.is_empty());
        q.answered("a", None);
        assert_eq!(ids(&q.start(e("a"), 0).0), ["a4"]);
        // Claimed until recorded: a read that finds it again does not queue it twice.
        q.claim(rows(6, "a"));
        assert_eq!(q.queued_total, 1);
    }

    #[test]
    fn a_failure_holds_back_the_endpoints_other_deliveries_until_its_time() {
        let mut q = Queues::default();
        q.claim(rows(3, "a"));
        q.claim(rows(1, "b"));
        q.start(e("a"), 0);
        q.claim(rows(5, "a"));
        q.answered("a", Some(100));
        assert!(q.start(e("a"), 99).0.is_empty(), "held back");
        assert_eq!(ids(&q.start(e("b"), 99).0), ["b0"], "others are not");
        assert_eq!(ids(&q.start(e("a"), 100).0), ["a3", "a4"]);
        q.answered("a", Some(200));
        q.claim(rows(6, "a"));
        assert!(q.start(e("a"), 150).0.is_empty());
        q.resume(e("a"));
        assert_eq!(ids(&q.start(e("a"), 150).0), ["a5"], "resumed by its owner");
    }

    #[test]
    fn a_delivery_recorded_while_a_read_ran_is_not_taken_from_that_read() {
        let mut q = Queues::default();
        q.claim(rows(1, "a"));
        q.start(e("a"), 0);
        q.begin_read(); // the read sees a0 still due...
        q.answered("a", None);
        q.release(vec![("a0".into(), "a".into())]); // ...then its success commits
        q.claim(rows(1, "a"));
        assert_eq!(q.queued_total, 0, "would be sent twice");
        q.begin_read(); // a read begun after the commit does not find it; if it did, take it
        q.claim(rows(1, "a"));
        assert_eq!(q.queued_total, 1);
    }

    #[test]
    fn what_was_read_ahead_is_dropped_when_an_endpoint_changes() {
        let mut q = Queues::default();
        q.claim(rows(6, "a"));
        q.start(e("a"), 0);
        assert!(q.set_generation(0).is_empty());
        assert_eq!(q.set_generation(1), ["a"]);
        assert_eq!(q.queued_total, 0);
        // The four being sent stay claimed; the two dropped may be read again.
        q.claim(rows(6, "a"));
        assert_eq!(q.queued_total, 2);
    }

    #[test]
    fn no_more_than_max_in_flight_start_across_endpoints() {
        let mut q = Queues::default();
        let endpoints: Vec<String> = (0..20).map(|i| format!("e{i}-")).collect();
        for ep in &endpoints {
            q.claim(rows(5, ep));
        }
        let (started, _) = q.start(endpoints.clone(), 0);
        assert_eq!(started.len(), MAX_IN_FLIGHT);
        assert!(
            q.answered(&started[0].endpoint_id, None),
            "look at every queue"
        );
        assert_eq!(q.start(endpoints, 0).0.len(), 1);
    }
}
