//! The events the writer records beside the usage it stores, in the same transaction: a model
//! without a price, and each limit crossing its warning or its 100% mark, once per window.
use super::counters::Windows;
use super::rollup;
use super::writer::Job;
use crate::error::ApiError;
use crate::events::{self, NewEvent, Severity};
use crate::limits::{self, Level};
use rusqlite::Connection;
use serde_json::json;

pub fn unknown_model_event(c: &Connection, job: &Job, model: &str) -> Result<(), ApiError> {
    events::record(
        c,
        job.now,
        NewEvent {
            tenant_id: job.tenant,
            category: "billing",
            event_type: "pricing.unknown_model",
            severity: Severity::Warning,
            message: format!(
                "no price for model `{}`: its events cost 0 until a price is set with PUT /api/pricing",
                crate::error::clip(model)
            ),
            data: json!({"model": model}),
            once_key: Some(format!("pricing.unknown_model:{model}")),
        },
    )?;
    Ok(())
}

/// One event per limit, window and mark: the `once_key` makes a second one a no-op, whatever
/// the timing of concurrent requests.
pub fn crossing_events(
    c: &Connection,
    job: &Job,
    w: &Windows,
    status: &limits::Status,
) -> Result<(), ApiError> {
    for check in &status.checks {
        let window = match check.window {
            limits::Window::Day => rollup::day_label(w.day),
            limits::Window::Month => rollup::month_label(w.month),
        };
        let marks: &[(&str, Severity)] = match check.level {
            Level::Ok => &[],
            Level::Warning => &[("limit.warning", Severity::Warning)],
            Level::Exceeded => &[
                ("limit.warning", Severity::Warning),
                ("limit.exceeded", Severity::Error),
            ],
        };
        for (event_type, severity) in marks {
            let message = if *event_type == "limit.warning" {
                check.describe_warning_mark()
            } else {
                check.describe()
            };
            let data = check.event_data(&window);
            events::record(
                c,
                job.now,
                NewEvent {
                    tenant_id: job.tenant,
                    category: "billing",
                    event_type,
                    severity: *severity,
                    message: format!("{message} ({window})"),
                    data,
                    once_key: Some(format!("{event_type}:{}:{window}", check.limit)),
                },
            )?;
        }
    }
    Ok(())
}
