//! Recording attempts: the retry schedule, `Retry-After`, 410 and 5-day disabling. Finished
//! attempts reach one recorder task, which writes as many as have finished in one transaction
//! (one commit for a burst, instead of one each).
use super::send::Outcome;
use super::store::{self, Due};
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::time::Micros;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

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
/// The most attempts written in one transaction.
const BATCH: usize = 256;

/// A finished attempt on its way to the recorder.
pub struct Done {
    pub d: Due,
    pub outcome: Outcome,
    pub at: Micros,
}

/// Writes finished attempts, a burst to a transaction, then hands each written batch to
/// `written` (which lets the worker claim those deliveries again). A batch that fails to
/// commit is handed over too: its deliveries stay due and are sent again (at least once).
pub async fn recorder(
    db: Db,
    outbox: Arc<super::outbox::Outbox>,
    mut finished: tokio::sync::mpsc::UnboundedReceiver<Done>,
    written: impl Fn(Vec<(String, String)>),
) {
    while let Some(first) = finished.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match finished.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let freed: Vec<(String, String)> = batch
            .iter()
            .map(|b| (b.d.id.clone(), b.d.endpoint_id.clone()))
            .collect();
        let outbox = outbox.clone();
        let result = db
            .write(move |c| {
                let tx = c.transaction()?;
                let mut reload = false;
                let mut succeeded = HashSet::new();
                for b in batch {
                    reload |= record(&tx, &b.d, b.outcome, b.at, &mut succeeded)?;
                }
                for endpoint in &succeeded {
                    store::mark_success(&tx, endpoint)?;
                }
                tx.commit()?;
                if reload {
                    outbox.replace(super::outbox::Snapshot::load(c)?);
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "recording webhook deliveries");
        }
        written(freed);
    }
}

/// When to try again after the `attempt`-th failed attempt (1-based): the schedule's wait
/// ±10%, or a longer `Retry-After`; `None` once the schedule is spent.
pub fn next_attempt(attempt: i64, now: Micros, retry_after: Option<Micros>) -> Option<Micros> {
    let wait = *SCHEDULE.get(usize::try_from(attempt - 1).ok()?)?;
    let jittered = (wait as f64 * rand::random_range(0.9..1.1)) as Micros;
    Some(now + jittered.max(retry_after.unwrap_or(0)))
}

/// How long a failed attempt holds back its endpoint's other deliveries: the schedule's
/// shortest first wait (5 s less 10%), or a longer `Retry-After`, so no retry is held past its
/// own time.
pub fn hold_back(o: &Outcome) -> Option<Micros> {
    o.error
        .as_ref()
        .map(|_| o.retry_after.unwrap_or(0).max(SCHEDULE[0] * 9 / 10))
}

/// What an attempt's outcome does to its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A success: the endpoint is no longer failing.
    Succeeded,
    /// A 410: the endpoint is disabled as gone.
    Gone,
    /// Any other failure: the endpoint is failing (since its first failure after a success).
    Failed,
}

/// What an attempt's outcome writes, the same on both stores: the delivery's status, when to
/// try again (None: no more attempts) and what happens to its endpoint.
pub struct Verdict {
    pub status: &'static str,
    pub next: Option<Micros>,
    pub effect: Effect,
}

pub fn verdict(d: &Due, o: &Outcome, now: Micros) -> Verdict {
    if o.error.is_none() {
        return Verdict {
            status: "succeeded",
            next: None,
            effect: Effect::Succeeded,
        };
    }
    if o.status == Some(410) {
        return Verdict {
            status: "failed",
            next: None,
            effect: Effect::Gone,
        };
    }
    let next = next_attempt(d.attempts + 1, now, o.retry_after);
    Verdict {
        status: if next.is_some() {
            "failed"
        } else {
            "exhausted"
        },
        next,
        effect: Effect::Failed,
    }
}

/// Whether an endpoint failing since `since` has failed long enough to be disabled.
pub fn failing_too_long(since: Option<Micros>, now: Micros) -> bool {
    since.is_some_and(|s| now - s >= FAILING_FOR)
}

/// The `webhook.disabled` event of an endpoint disabled for `reason` (`gone` or `failing`).
pub fn disabled_event(d: &Due, reason: &str) -> NewEvent {
    let msg = match reason {
        "gone" => "webhook endpoint disabled: the receiver answered 410 Gone".to_string(),
        _ => "webhook endpoint disabled: no delivery succeeded for 5 days".to_string(),
    };
    let data = json!({"endpoint_id": d.endpoint_id, "reason": reason});
    NewEvent::of(Kind::WebhookDisabled, d.owner, msg, data)
}

/// Writes an attempt's outcome; true when an endpoint was disabled (the snapshot must reload).
/// A success's endpoint goes into `succeeded`, to be marked once for the whole batch (or before
/// a later failure of the same endpoint, in the order they happened).
fn record(
    c: &rusqlite::Connection,
    d: &Due,
    o: Outcome,
    now: Micros,
    succeeded: &mut HashSet<String>,
) -> Result<bool, ApiError> {
    let v = verdict(d, &o, now);
    store::record_attempt(c, &d.id, v.status, o.status, o.error.as_deref(), v.next)?;
    match v.effect {
        Effect::Succeeded => {
            succeeded.insert(d.endpoint_id.clone());
            Ok(false)
        }
        Effect::Gone => disable(c, d, "gone", now),
        Effect::Failed => {
            // A success earlier in this batch came first: its mark goes in before this failure's.
            if succeeded.remove(&d.endpoint_id) {
                store::mark_success(c, &d.endpoint_id)?;
            }
            let since = store::mark_failure(c, &d.endpoint_id, now)?;
            if failing_too_long(since, now) {
                return disable(c, d, "failing", now);
            }
            Ok(false)
        }
    }
}

fn disable(c: &rusqlite::Connection, d: &Due, reason: &str, now: Micros) -> Result<bool, ApiError> {
    if !store::disable(c, &d.endpoint_id, reason, now)? {
        return Ok(false);
    }
    events::record(c, now, disabled_event(d, reason))?;
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
    fn a_longer_retry_after_is_honoured() {
        let next = next_attempt(1, 0, Some(60 * SECOND)).unwrap();
        assert_eq!(next, 60 * SECOND);
        let next = next_attempt(2, 0, Some(SECOND)).unwrap();
        assert!(next >= 270 * SECOND);
    }
}
