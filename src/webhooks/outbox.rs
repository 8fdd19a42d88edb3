//! The outbox: `enqueue` runs inside the transaction that records an event and writes one
//! delivery per enabled endpoint that wants it (the tenant's own and the instance's), so an
//! event and its deliveries commit or roll back together.
//!
//! Matching reads an in-memory snapshot of the enabled endpoints, so a tenant without
//! endpoints costs one map lookup, never a query. `events::record` has only a connection, so
//! the snapshots live in a process-global registry keyed by the database file's path (set at
//! start, replaced after every endpoint write): several servers in one process (the tests)
//! each keep their own. A database no server registered (a command run beside none) is
//! matched with a query instead.
use super::store::{self, NewDelivery};
use super::{Scope, Sub};
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// The enabled endpoints of one database, by owner.
#[derive(Default)]
pub struct Snapshot {
    tenants: HashMap<TenantId, Vec<Sub>>,
    instance: Vec<Sub>,
}

impl Snapshot {
    pub fn load(c: &Connection) -> rusqlite::Result<Snapshot> {
        let mut s = Snapshot::default();
        for (scope, sub) in store::subscriptions(c)? {
            match scope {
                Scope::Instance => s.instance.push(sub),
                Scope::Tenant => s.tenants.entry(sub.owner).or_default().push(sub),
            }
        }
        Ok(s)
    }

    /// The endpoints that want an event of `tenant` of type `event_type`.
    fn wanting(&self, tenant: TenantId, event_type: &str) -> Vec<Sub> {
        let own = self.tenants.get(&tenant).into_iter().flatten();
        own.chain(&self.instance)
            .filter(|s| s.wants(event_type))
            .cloned()
            .collect()
    }
}

/// One database's snapshot and the worker's doorbell.
#[derive(Default)]
pub struct Outbox {
    snapshot: RwLock<Snapshot>,
    /// Rung after a delivery is written, so the worker need not wait for its next poll.
    pub wake: tokio::sync::Notify,
    /// Endpoints with a delivery written (or a slot freed) since the worker last looked: it
    /// refills exactly these from their own index, never scanning the whole backlog.
    dirty: Mutex<HashSet<String>>,
    /// Endpoints an owner asked to send to now (a test send, a manual retry): the worker lifts
    /// their pause after a failure.
    resumed: Mutex<HashSet<String>>,
    /// Counts snapshot replacements (every endpoint write: URL, filter, secret rotation,
    /// disabling): the worker drops the deliveries it read ahead, with their URL and secrets,
    /// when it changes.
    generation: AtomicU64,
}

impl Outbox {
    /// Tells the worker that `endpoint` may have a delivery to send now.
    pub fn ring(&self, endpoint: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string());
        self.wake.notify_one();
    }

    /// Rings `endpoint` for a delivery its owner wants sent now, even while the worker is
    /// holding it back after a failure.
    pub fn resume(&self, endpoint: &str) {
        self.resumed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string());
        self.ring(endpoint);
    }

    /// The endpoints resumed since the last call.
    pub fn take_resumed(&self) -> HashSet<String> {
        std::mem::take(&mut *self.resumed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The endpoints rung since the last call.
    pub fn take_rung(&self) -> HashSet<String> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn replace(&self, s: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = s;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times the snapshot was replaced (see `generation`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Outbox>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Outbox>>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Registers (or replaces) the outbox of the database `c` is connected to, loaded from it.
pub fn register(c: &Connection) -> rusqlite::Result<Arc<Outbox>> {
    let outbox = Arc::new(Outbox::default());
    outbox.replace(Snapshot::load(c)?);
    let path = c.path().unwrap_or_default().to_string();
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path, outbox.clone());
    Ok(outbox)
}

fn lookup(c: &Connection) -> Option<Arc<Outbox>> {
    let path = c.path()?;
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .cloned()
}

/// An event as `GET /api/events` shows it, which is what a delivery's `data` holds.
pub struct EventRow<'a> {
    pub id: &'a str,
    pub tenant_id: TenantId,
    pub category: &'a str,
    pub event_type: &'a str,
    pub severity: &'a str,
    pub message: &'a str,
    pub data: &'a Value,
    pub created_at: Micros,
}

impl EventRow<'_> {
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "tenant_id": self.tenant_id,
            "category": self.category,
            "event_type": self.event_type,
            "severity": self.severity,
            "message": self.message,
            "data": self.data,
            "created_at": crate::time::rfc3339(self.created_at),
        })
    }
}

/// Writes the event's deliveries in the caller's transaction; returns how many.
pub fn enqueue(c: &Connection, e: &EventRow<'_>) -> rusqlite::Result<usize> {
    let outbox = lookup(c);
    let subs = match &outbox {
        Some(o) => o
            .snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .wanting(e.tenant_id, e.event_type),
        None => Snapshot::load(c)?.wanting(e.tenant_id, e.event_type),
    };
    if subs.is_empty() {
        return Ok(0);
    }
    let payload = e.render().to_string();
    for s in &subs {
        deliver_to(c, s.id.as_str(), s.owner, e, &payload)?;
        // Rung before the commit: a worker that looks too early finds nothing due yet, and
        // the next ring or poll finds it.
        if let Some(o) = &outbox {
            o.ring(s.id.as_str());
        }
    }
    Ok(subs.len())
}

/// Writes one delivery of an event to one endpoint (also the test send's way in).
pub fn deliver_to(
    c: &Connection,
    endpoint: &str,
    owner: TenantId,
    e: &EventRow<'_>,
    payload: &str,
) -> rusqlite::Result<String> {
    store::insert_delivery(
        c,
        &NewDelivery {
            endpoint_id: endpoint,
            owner,
            event_tenant: e.tenant_id,
            event_id: e.id,
            event_type: e.event_type,
            payload,
            at: e.created_at,
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::events::{self, Kind, NewEvent};
    use crate::tenancy::DEFAULT_TENANT_ID;
    use rusqlite::Connection;
    use serde_json::json;

    fn deliveries(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM webhook_deliveries", [], |r| r.get(0))
            .unwrap()
    }

    /// An event and its deliveries commit or roll back together; a filter that does not
    /// match writes none.
    #[test]
    fn deliveries_are_written_in_the_events_transaction() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        c.execute(
            "INSERT INTO webhook_endpoints (id, tenant_id, scope, url, event_types, format,
                 enabled, secret, created_at, updated_at)
             VALUES ('e1', ?1, 'tenant', 'http://x/', '[\"key.*\"]', 'standard', 1, x'00', 0, 0)",
            [DEFAULT_TENANT_ID],
        )
        .unwrap();
        let event = |kind| NewEvent::of(kind, DEFAULT_TENANT_ID, "m".into(), json!({}));
        let tx = c.transaction().unwrap();
        events::record(&tx, 1, event(Kind::KeyCreated)).unwrap();
        assert_eq!(deliveries(&tx), 1);
        tx.rollback().unwrap();
        assert_eq!(deliveries(&c), 0);
        let tx = c.transaction().unwrap();
        events::record(&tx, 1, event(Kind::KeyCreated)).unwrap();
        events::record(&tx, 1, event(Kind::SettingsChanged)).unwrap();
        tx.commit().unwrap();
        assert_eq!(deliveries(&c), 1);
    }
}
