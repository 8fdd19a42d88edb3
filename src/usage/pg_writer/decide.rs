//! Deciding each job of a group from what the one insert did: its outcome, its duplicates,
//! the events it causes and its rollup deltas.
use super::super::counters::Windows;
use super::super::crossings;
use super::super::pg_store::{self, NewRow, RollupKey, Statements};
use super::super::priced::CostSource;
use super::super::rollup::Totals;
use super::super::store::FirstRecorded;
use super::super::writer::{Job, Outcome};
use crate::error::ApiError;
use crate::events::NewEvent;
use crate::limits;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::Transaction;
use uuid::Uuid;

pub(super) fn event_ids(job: &Job) -> Result<Vec<Uuid>, ApiError> {
    job.events
        .iter()
        .map(|p| Uuid::parse_str(&p.id).map_err(ApiError::internal))
        .collect()
}

pub(super) fn new_rows<'a>(job: &'a Job, ids: &'a [Uuid]) -> impl Iterator<Item = NewRow<'a>> + 'a {
    let mode = job.settings.settings.execution_mode.as_str();
    let markup = job.settings.settings.markup_percent.units();
    job.events.iter().zip(ids).map(move |(p, id)| NewRow {
        tenant: job.tenant.as_uuid(),
        id: *id,
        priced: p,
        mode,
        markup,
    })
}

/// The first recorded events of the rows that were not inserted (their `event_id` was taken).
pub(super) async fn duplicates_of(
    tx: &Transaction<'_>,
    s: &Statements,
    rows: &[NewRow<'_>],
    inserted: &HashSet<Uuid>,
) -> Result<HashMap<(Uuid, String), FirstRecorded>, ApiError> {
    let keys: Vec<(Uuid, &str)> = rows
        .iter()
        .filter(|r| !inserted.contains(&r.id))
        .filter_map(|r| Some((r.tenant, r.priced.event.event_id.as_deref()?)))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(pg_store::first_recorded(tx, s, &keys).await?)
}

/// A job's outcome from what the insert did, its duplicates' indexes and the events it causes;
/// adds its new events to `w` (refusing the job if all time cannot hold them).
pub(super) fn decide(
    job: &Job,
    ids: &[Uuid],
    inserted: &HashSet<Uuid>,
    first: &HashMap<(Uuid, String), FirstRecorded>,
    w: &mut Windows,
) -> Result<(Outcome, Vec<usize>, Vec<NewEvent>), ApiError> {
    let mut out = Outcome::start(job);
    let mut dups = Vec::new();
    let mut events = Vec::new();
    let tenant = job.tenant.as_uuid();
    for (i, (p, id)) in job.events.iter().zip(ids).enumerate() {
        if !inserted.contains(id) {
            let recorded = p
                .event
                .event_id
                .as_ref()
                .and_then(|k| first.get(&(tenant, k.clone())))
                .ok_or_else(|| ApiError::internal("an event was neither stored nor a duplicate"))?;
            out.duplicate(p, recorded.clone());
            dups.push(i);
            continue;
        }
        out.accept(i, p, w)?;
        if p.source == CostSource::UnknownModel {
            events.push(crossings::unknown_model(job, p.event.model.as_str()));
        }
    }
    out.limits = limits::evaluate(&job.settings.settings, &w.today, &w.this_month);
    events.extend(crossings::crossings(job, w, &out.limits));
    Ok((out, dups, events))
}

/// The job's rollup deltas, its duplicates taken out again (as the SQLite writer does).
pub(super) fn add_rollups(rollups: &mut BTreeMap<RollupKey, Totals>, job: &Job, dups: &[usize]) {
    let tenant = job.tenant.as_uuid();
    for ((day, dim), keys) in &job.rollups {
        for (key, t) in keys {
            rollups
                .entry((tenant, dim, *day, key.clone()))
                .or_default()
                .add(t);
        }
    }
    for p in dups.iter().map(|&i| &job.events[i]) {
        for (day, dim, key) in p.rollup_rows() {
            if let Some(t) = rollups.get_mut(&(tenant, dim, day, key.to_string())) {
                t.sub(&p.totals());
            }
        }
    }
}
