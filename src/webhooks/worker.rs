//! The delivery worker: a thread of its own that claims due deliveries, sends them (at most
//! `MAX_IN_FLIGHT` at once, `PER_ENDPOINT` per endpoint) and records each outcome. It never
//! touches ingest: events only write rows, and the worker reads them. A delivery is claimed in
//! memory only, so after a crash or `kill -9` every unfinished one is due again: at least once,
//! and receivers dedupe on `webhook-id`. It stops once the server has (`liveness`).
use super::outbox::Outbox;
use super::service::binding;
use super::store::{self, Due};
use super::{sign, ssrf};
use crate::clock::Clock;
use crate::crypto::{self, MasterKey};
use crate::db::Db;
use crate::events::{self, Kind, NewEvent};
use crate::time::{to_micros, Micros};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub const MAX_IN_FLIGHT: usize = 64;
pub const PER_ENDPOINT: usize = 4;
/// How often every endpoint's due deliveries are looked for (retries coming due, at least
/// 4.5 s after their failure); between those looks the worker refills only the endpoints rung
/// (`Outbox::ring`). The look reads every due row, so with a large backlog held back (a
/// receiver that is down) it costs a few milliseconds: once a second keeps that from ingest.
const POLL: Duration = Duration::from_secs(1);
const SECOND: Micros = 1_000_000;
/// The waits after each failed attempt; after the last, the delivery is exhausted.
pub const SCHEDULE: [Micros; 7] = [
    5 * SECOND,
    300 * SECOND,
    1800 * SECOND,
    7200 * SECOND,
    18000 * SECOND,
    36000 * SECOND,
    36000 * SECOND,
];
/// An endpoint failing without a success for this long is disabled.
pub const FAILING_FOR: Micros = 5 * 86400 * SECOND;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Micros = 86400 * SECOND;

pub struct Worker {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub key: Arc<MasterKey>,
    pub outbox: Arc<Outbox>,
    pub timeout: Duration,
    pub allow_private: bool,
}

/// A finished attempt on its way to the recorder.
struct Done {
    d: Due,
    outcome: Outcome,
    at: Micros,
}

#[derive(Default)]
struct InFlight {
    ids: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
    /// Endpoints whose last attempt failed, until when (app clock): their other due
    /// deliveries wait instead of failing one after another against a receiver that is down.
    paused: HashMap<String, Micros>,
    /// Deliveries recorded and freed since the current look at due rows began: the look may
    /// have read them before their outcome committed, so they are not sent from it (they would
    /// go out twice). Emptied when a look begins; a row freed before that was committed before
    /// the look read it.
    recorded: HashSet<String>,
}

impl Worker {
    pub fn start(self, liveness: Weak<std::fs::File>) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(ssrf::Resolver {
                allow_private: self.allow_private,
            }))
            .user_agent(concat!("tenantry-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("webhook worker: {e}"))?;
        std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || rt.block_on(self.run(client, liveness)))
            .map_err(|e| format!("webhook worker: {e}"))?;
        Ok(())
    }

    async fn run(self, client: reqwest::Client, liveness: Weak<std::fs::File>) {
        let me = Arc::new(self);
        let flight = Arc::new(Mutex::new(InFlight::default()));
        let (done, finished) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(me.clone().recorder(finished, flight.clone()));
        let mut last_sweep = std::time::Instant::now() - POLL;
        while liveness.upgrade().is_some() {
            lock(&flight).recorded.clear();
            // Every endpoint now and then; in between, only the ones rung, from their index.
            let claimed = if last_sweep.elapsed() >= POLL {
                last_sweep = std::time::Instant::now();
                me.outbox.take_rung();
                let now = to_micros(me.clock.now());
                me.db
                    .run(move |c| Ok(store::due(c, now, PER_ENDPOINT as i64 * 2, 256)?))
                    .await
            } else {
                me.rung().await
            };
            match claimed {
                Ok(batch) => me.send(&client, &flight, &done, batch),
                Err(e) => tracing::error!(error = %e, "webhook worker"),
            }
            let wait = POLL.saturating_sub(last_sweep.elapsed());
            let _ = tokio::time::timeout(wait, me.outbox.wake.notified()).await;
        }
    }

    /// The due deliveries of the endpoints rung since the last look.
    async fn rung(&self) -> Result<Vec<Due>, crate::error::ApiError> {
        let endpoints: Vec<String> = self.outbox.take_rung().into_iter().collect();
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let now = to_micros(self.clock.now());
        self.db
            .run(move |c| {
                let mut out = Vec::new();
                for e in &endpoints {
                    // Twice the slots, so deliveries still in flight do not hide the next ones.
                    out.extend(store::due_for(c, e, now, PER_ENDPOINT as i64 * 2)?);
                }
                Ok(out)
            })
            .await
    }

    /// Sends what `batch` holds that fits: at most `MAX_IN_FLIGHT` at once and `PER_ENDPOINT`
    /// per endpoint, none twice. Each outcome goes to the recorder, which writes it and only
    /// then frees the delivery's place (so it cannot be claimed again before it is recorded).
    fn send(
        self: &Arc<Self>,
        client: &reqwest::Client,
        flight: &Arc<Mutex<InFlight>>,
        done: &tokio::sync::mpsc::UnboundedSender<Done>,
        batch: Vec<Due>,
    ) {
        let now = to_micros(self.clock.now());
        let resumed = self.outbox.take_resumed();
        if !resumed.is_empty() {
            let mut f = lock(flight);
            for e in &resumed {
                f.paused.remove(e);
            }
        }
        for d in batch {
            {
                let mut f = lock(flight);
                if f.ids.len() >= MAX_IN_FLIGHT {
                    break;
                }
                let busy = f.per_endpoint.get(&d.endpoint_id).copied().unwrap_or(0);
                let paused = f
                    .paused
                    .get(&d.endpoint_id)
                    .is_some_and(|until| *until > now);
                let stale = f.recorded.contains(&d.id);
                if f.ids.contains(&d.id) || stale || busy >= PER_ENDPOINT || paused {
                    continue;
                }
                f.ids.insert(d.id.clone());
                *f.per_endpoint.entry(d.endpoint_id.clone()).or_default() += 1;
            }
            let (me, client, done) = (self.clone(), client.clone(), done.clone());
            tokio::spawn(async move {
                let outcome = me.attempt(&client, &d).await;
                let at = to_micros(me.clock.now());
                // The recorder outlives every sender; a failed send means the worker stopped.
                let _ = done.send(Done { d, outcome, at });
            });
        }
    }

    /// Writes finished attempts, as many as have finished, in one transaction (one commit for a
    /// burst, instead of one each), then frees their places and rings their endpoints for the
    /// next deliveries. A batch that fails to commit leaves its deliveries due: they are sent
    /// again (at least once).
    async fn recorder(
        self: Arc<Self>,
        mut finished: tokio::sync::mpsc::UnboundedReceiver<Done>,
        flight: Arc<Mutex<InFlight>>,
    ) {
        while let Some(first) = finished.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_IN_FLIGHT {
                match finished.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let freed: Vec<(String, String)> = batch
                .iter()
                .map(|b| (b.d.id.clone(), b.d.endpoint_id.clone()))
                .collect();
            // A failure pauses its endpoint for the schedule's shortest first wait (5 s less
            // 10%, or a longer Retry-After), so no retry is held past its own time; a success
            // lifts the pause.
            let pauses: Vec<(String, Option<Micros>)> = batch
                .iter()
                .map(|b| {
                    let until = b.outcome.error.as_ref().map(|_| {
                        b.at + b.outcome.retry_after.unwrap_or(0).max(SCHEDULE[0] * 9 / 10)
                    });
                    (b.d.endpoint_id.clone(), until)
                })
                .collect();
            let outbox = self.outbox.clone();
            let written = self
                .db
                .write(move |c| {
                    let tx = c.transaction()?;
                    let mut reload = false;
                    for b in batch {
                        reload |= record(&tx, &b.d, b.outcome, b.at)?;
                    }
                    tx.commit()?;
                    if reload {
                        outbox.replace(super::outbox::Snapshot::load(c)?);
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = written {
                tracing::error!(error = %e, "recording webhook deliveries");
            }
            {
                let mut f = lock(&flight);
                for (endpoint, until) in pauses {
                    match until {
                        Some(t) => f.paused.insert(endpoint, t),
                        None => f.paused.remove(&endpoint),
                    };
                }
                for (id, endpoint) in &freed {
                    f.ids.remove(id);
                    f.recorded.insert(id.clone());
                    if let Some(n) = f.per_endpoint.get_mut(endpoint) {
                        *n -= 1;
                        if *n == 0 {
                            f.per_endpoint.remove(endpoint);
                        }
                    }
                }
            }
            for (_, endpoint) in &freed {
                self.outbox.ring(endpoint);
            }
        }
    }

    /// The secrets that sign now: the current one, and the previous one during its overlap.
    async fn secrets(&self, d: &Due) -> Result<Vec<String>, String> {
        let id = d.endpoint_id.clone();
        let sealed = self
            .db
            .run(move |c| Ok(store::secrets(c, &id)?))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the endpoint is gone")?;
        let (current, previous, until) = sealed;
        let bind = binding(&d.endpoint_id);
        let open = |s: &[u8]| {
            crypto::open(&self.key, s, d.owner.as_uuid(), &bind)
                .map(|s| s.expose().to_string())
                .map_err(|e| format!("the endpoint's secret does not open: {e}"))
        };
        let mut out = vec![open(&current)?];
        if let (Some(p), Some(until)) = (previous, until) {
            if until > to_micros(self.clock.now()) {
                out.push(open(&p)?);
            }
        }
        Ok(out)
    }

    async fn attempt(&self, client: &reqwest::Client, d: &Due) -> Outcome {
        let secrets = match self.secrets(d).await {
            Ok(s) => s,
            Err(e) => return Outcome::failed(None, e),
        };
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => return Outcome::failed(None, e.to_string()),
        };
        // IP literals never reach the resolver: check them (and names, early) here.
        if let Err(e) = ssrf::check_url(&url, self.allow_private).await {
            return Outcome::failed(None, format!("refused: {e}"));
        }
        let body = body(d);
        // The wall clock, not the app's `Clock`: receivers compare it with their own clock
        // (the official libraries refuse a timestamp five minutes off).
        let ts = chrono::Utc::now().timestamp();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = sign::signature(&refs, &d.event_id, ts, body.as_bytes());
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome {
                status: Some(r.status().as_u16()),
                error: None,
                retry_after: None,
            },
            Ok(r) => {
                let code = r.status().as_u16();
                let now = to_micros(self.clock.now());
                let retry_after = match code {
                    429 | 503 => r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, now)),
                    _ => None,
                };
                Outcome {
                    status: Some(code),
                    error: Some(format!("the receiver answered {code}")),
                    retry_after,
                }
            }
            Err(e) if e.is_timeout() => {
                Outcome::failed(None, "the receiver did not answer in time".into())
            }
            // Without the URL: a Slack URL's path is a credential, and the log has its own copy.
            Err(e) => Outcome::failed(None, crate::error::clip(&error_chain(&e.without_url()))),
        }
    }
}

fn lock(f: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Micros>,
}

impl Outcome {
    fn failed(status: Option<u16>, error: String) -> Outcome {
        Outcome {
            status,
            error: Some(error),
            retry_after: None,
        }
    }
}

/// How long a `Retry-After` value asks to wait from `now`, at most `MAX_RETRY_AFTER`: delay
/// seconds, or an HTTP date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms
/// it requires recipients to accept), read against the app's clock. A date in the past asks
/// for no wait; anything else unreadable is ignored.
fn retry_after(value: &str, now: Micros) -> Option<Micros> {
    let value = value.trim();
    let wait = match value.parse::<i64>() {
        Ok(secs) => secs.max(0).saturating_mul(SECOND),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
            let at = Micros::try_from(since_epoch.as_micros()).ok()?;
            (at - now).max(0)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The request body: Standard Webhooks' `{"type", "timestamp", "data"}`, or Slack's `{"text"}`.
fn body(d: &Due) -> String {
    let event: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
    if d.format == "slack" {
        let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
        return json!({"text": format!("{} {}: {}", s("severity"), d.event_type, s("message"))})
            .to_string();
    }
    json!({
        "type": d.event_type,
        "timestamp": crate::time::rfc3339(d.created_at),
        "data": event,
    })
    .to_string()
}

/// When to try again after the `attempt`-th failed attempt (1-based): the schedule's wait
/// ±10%, or a longer `Retry-After`; `None` once the schedule is spent.
pub fn next_attempt(attempt: i64, now: Micros, retry_after: Option<Micros>) -> Option<Micros> {
    let wait = *SCHEDULE.get(usize::try_from(attempt - 1).ok()?)?;
    let jittered = (wait as f64 * rand::random_range(0.9..1.1)) as Micros;
    Some(now + jittered.max(retry_after.unwrap_or(0)))
}

/// Writes an attempt's outcome; true when an endpoint was disabled (the snapshot must reload).
fn record(
    c: &rusqlite::Connection,
    d: &Due,
    o: Outcome,
    now: Micros,
) -> Result<bool, crate::error::ApiError> {
    let attempt = d.attempts + 1;
    if o.error.is_none() {
        store::record_attempt(c, &d.id, "succeeded", o.status, None, None)?;
        store::mark_success(c, &d.endpoint_id)?;
        return Ok(false);
    }
    if o.status == Some(410) {
        store::record_attempt(c, &d.id, "failed", o.status, o.error.as_deref(), None)?;
        return disable(c, d, "gone", now);
    }
    let next = next_attempt(attempt, now, o.retry_after);
    let status = if next.is_some() {
        "failed"
    } else {
        "exhausted"
    };
    store::record_attempt(c, &d.id, status, o.status, o.error.as_deref(), next)?;
    let since = store::mark_failure(c, &d.endpoint_id, now)?;
    if since.is_some_and(|s| now - s >= FAILING_FOR) {
        return disable(c, d, "failing", now);
    }
    Ok(false)
}

fn disable(
    c: &rusqlite::Connection,
    d: &Due,
    reason: &str,
    now: Micros,
) -> Result<bool, crate::error::ApiError> {
    if !store::disable(c, &d.endpoint_id, reason, now)? {
        return Ok(false);
    }
    let msg = match reason {
        "gone" => "webhook endpoint disabled: the receiver answered 410 Gone".to_string(),
        _ => "webhook endpoint disabled: no delivery succeeded for 5 days".to_string(),
    };
    let data = json!({"endpoint_id": d.endpoint_id, "reason": reason});
    events::record(
        c,
        now,
        NewEvent::of(Kind::WebhookDisabled, d.owner, msg, data),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_waits_within_ten_percent_then_ends() {
        for (i, wait) in SCHEDULE.iter().enumerate() {
            let next = next_attempt(i as i64 + 1, 0, None).unwrap();
            assert!(
                next >= wait * 9 / 10 && next <= wait * 11 / 10,
                "{i}: {next}"
            );
        }
        assert_eq!(next_attempt(8, 0, None), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example, in its three forms.
        let at = 784111777 * SECOND;
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(date, at - 90 * SECOND),
                Some(90 * SECOND),
                "{date}"
            );
        }
        assert_eq!(retry_after(" 120 ", 0), Some(120 * SECOND));
        assert_eq!(retry_after("-5", 0), Some(0));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + SECOND),
            Some(0)
        );
        assert_eq!(retry_after("99999999", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", 0), None);
    }

    #[test]
    fn a_longer_retry_after_is_honoured() {
        let next = next_attempt(1, 0, Some(60 * SECOND)).unwrap();
        assert_eq!(next, 60 * SECOND);
        let next = next_attempt(2, 0, Some(SECOND)).unwrap();
        assert!(next >= 270 * SECOND);
    }
}
