//! Making statements final: once a period and its grace have passed, each tenant's statement is
//! stored with a `statement.finalized` event, in one transaction. A thread does it for every
//! tenant in the background; a read of a final period that finds nothing stored yet does it for
//! its own tenant first, so a `final` statement shown is always the stored one.
use super::period::{Period, Status};
use super::statement::{amount_due, Line};
use super::store;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{Kind, NewEvent};
use crate::tenancy::TenantId;
use crate::time::{to_micros, Micros};
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The stored statement of a final period, storing it first if need be: `None` when the tenant
/// had no usage in the period (there is nothing to store). `now` must be read with the write
/// lock held (see `in_write`), so no event of the period can commit after it.
pub fn finalize(
    c: &Connection,
    tenant: &str,
    period: Period,
    now: Micros,
) -> Result<Option<(Vec<Line>, Micros)>, ApiError> {
    if let Some(stored) = store::stored(c, tenant, period)? {
        return Ok(Some(stored));
    }
    let lines = store::live_lines(c, tenant, period)?;
    if lines.is_empty() {
        return Ok(None);
    }
    let (due, event) = finalized_event(tenant, period, &lines)?;
    if store::insert_final(c, tenant, period, &lines, due, now)? {
        crate::events::record(c, now, event)?;
    }
    Ok(Some((lines, now)))
}

/// A statement's amount due and the `statement.finalized` event that says it was stored (both
/// stores record the same one).
pub(super) fn finalized_event(
    tenant: &str,
    period: Period,
    lines: &[Line],
) -> Result<(crate::usage::money::Nanousd, NewEvent), ApiError> {
    let billed = lines
        .iter()
        .fold(crate::usage::money::Nanousd::ZERO, |a, l| {
            a.saturating_add(l.billed_cost_usd)
        });
    let due = amount_due(billed);
    let events: i64 = lines.iter().map(|l| l.events).sum();
    let id = TenantId::parse(tenant)
        .ok_or_else(|| ApiError::internal("a stored tenant id is not a UUID"))?;
    let event = NewEvent::of(
        Kind::StatementFinalized,
        id,
        format!(
            "the statement for {} is final: {} USD due",
            period.label(),
            due.to_json_number()
        ),
        json!({
            "period": period.label(),
            "events": events,
            "billed_cost_usd": billed,
            "amount_due_usd": due,
        }),
    );
    Ok((due, event))
}

/// Runs `f` in an IMMEDIATE transaction with "now" read after the write lock is held: the usage
/// writer reads its clock under the same lock, so an event is either committed before a
/// statement is stored (and in it) or refused with `period_closed` after.
pub fn in_write<T>(
    c: &mut Connection,
    clock: &dyn Clock,
    f: impl FnOnce(&Connection, Micros) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = to_micros(clock.now());
    let out = f(&tx, now)?;
    tx.commit()?;
    Ok(out)
}

/// Stores every final statement not yet stored, period by period from the last one finished
/// (or the first month with usage), one tenant per transaction. Returns how many it stored.
pub fn catch_up(db: &Db, clock: &dyn Clock, grace: Micros) -> Result<usize, ApiError> {
    let first_open = Period::of(to_micros(clock.now()).saturating_sub(grace));
    let c = db.conn()?;
    let start = match store::finalized_through(&c)? {
        Some(p) => p,
        None => match store::first_period(&c)? {
            Some(p) => p,
            None => return Ok(0),
        },
    };
    drop(c);
    let mut stored = 0;
    let mut p = start;
    while p < first_open {
        stored += finalize_period(db, clock, grace, p)?;
        p = p.next();
        db.write_blocking(|c| Ok(store::set_finalized_through(c, p)?))?;
    }
    Ok(stored)
}

/// Stores the statement of every tenant with usage in `period` that has none stored, one tenant
/// per transaction (so ingest waits for one tenant's statement at most), if the period is final.
pub fn finalize_period(
    db: &Db,
    clock: &dyn Clock,
    grace: Micros,
    period: Period,
) -> Result<usize, ApiError> {
    let tenants = store::unfinalized_tenants(&*db.conn()?, period)?;
    let mut stored = 0;
    for t in tenants {
        stored += db.write_blocking(|c| {
            in_write(c, clock, |c, now| {
                if period.status(now, grace) != Status::Final {
                    return Ok(0);
                }
                Ok(usize::from(finalize(c, &t, period, now)?.is_some()))
            })
        })?;
    }
    Ok(stored)
}

/// Starts the finalizer thread: a catch-up at once and then every `every`; it ends once the
/// server has stopped (`alive` gone).
pub fn start(
    db: Db,
    clock: Arc<dyn Clock>,
    grace: Micros,
    every: Duration,
    alive: Weak<std::fs::File>,
) {
    let c = clock.clone();
    crate::db::sweep::every(
        "billing-finalizer",
        clock,
        every,
        alive,
        move |_, _| match catch_up(&db, c.as_ref(), grace) {
            Ok(0) => {}
            Ok(n) => tracing::info!(statements = n, "billing statements finalized"),
            Err(e) => tracing::warn!(error = ?e, "finalizing statements failed; retrying later"),
        },
    );
}
