//! The events the writer records beside the usage it stores, in the same transaction: a model
//! without a price, and each limit crossing its warning or its 100% mark, once per window.
use super::counters::Windows;
use super::rollup;
use super::writer::Job;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::limits::{self, Level};
use rusqlite::Connection;
use serde_json::json;

pub fn unknown_model_event(c: &Connection, job: &Job, model: &str) -> Result<(), ApiError> {
    events::record(c, job.now, unknown_model(job, model))?;
    Ok(())
}

/// The `pricing.unknown_model` event, once per tenant and model.
pub fn unknown_model(job: &Job, model: &str) -> NewEvent {
    let message = format!(
        "no price for model `{}`: its events cost 0 until a price is set with PUT /api/pricing",
        crate::error::clip(model)
    );
    NewEvent::of(
        Kind::PricingUnknownModel,
        job.tenant,
        message,
        json!({"model": model}),
    )
    .once(format!("pricing.unknown_model:{model}"))
}

/// One event per limit, window and mark: the `once_key` makes a second one a no-op, whatever
/// the timing of concurrent requests.
pub fn crossing_events(
    c: &Connection,
    job: &Job,
    w: &Windows,
    status: &limits::Status,
) -> Result<(), ApiError> {
    for e in crossings(job, w, status) {
        events::record(c, job.now, e)?;
    }
    Ok(())
}

/// The events of every mark `status` has reached in `w`'s windows; recording one that was
/// already recorded does nothing (its `once_key`).
pub fn crossings(job: &Job, w: &Windows, status: &limits::Status) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for check in &status.checks {
        let window = match check.window {
            limits::Window::Day => rollup::day_label(w.day),
            limits::Window::Month => rollup::month_label(w.month),
        };
        let marks: &[Kind] = match check.level {
            Level::Ok => &[],
            Level::Warning => &[Kind::LimitWarning],
            Level::Exceeded => &[Kind::LimitWarning, Kind::LimitExceeded],
        };
        for &kind in marks {
            let message = match kind {
                Kind::LimitWarning => check.describe_warning_mark(),
                _ => check.describe(),
            };
            let e = NewEvent::of(
                kind,
                job.tenant,
                format!("{message} ({window})"),
                check.event_data(&window),
            )
            .once(format!("{}:{}:{window}", kind.event_type(), check.limit));
            out.push(e);
        }
    }
    out
}
