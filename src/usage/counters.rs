//! Each tenant's usage totals for the current UTC day and month and over all time, in memory, so
//! limit checks on ingest and `/api/usage/limits` never sum rows, and the writer can refuse an
//! event that would take a total past what SQLite can hold. Only the ingest writer changes them, after its
//! transaction commits; a window for another day or month is stale and read from the rollups.
use super::rollup::{self, Totals};
use crate::tenancy::TenantId;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    pub day: i64,
    pub today: Totals,
    /// First day of the month.
    pub month: i64,
    pub this_month: Totals,
    /// Every total the tenant has (a day, a month, a group, a stats window) is at most this one,
    /// so keeping it representable keeps them all representable.
    pub all_time: Totals,
}

impl Windows {
    /// Reads the windows holding `day` from the rollups (one row a day: at most 31 for the
    /// month, one per day with usage for all time).
    pub fn load(c: &Connection, tenant: &str, day: i64) -> rusqlite::Result<Windows> {
        let (first, next) = rollup::month_span(day);
        Ok(Windows {
            day,
            today: super::store::total(c, tenant, day, day + 1)?,
            month: first,
            this_month: super::store::total(c, tenant, first, next)?,
            all_time: super::store::total(c, tenant, i64::MIN, i64::MAX)?,
        })
    }

    /// Adds an event's amounts to all time and to the windows it falls in; false, changing
    /// nothing, when all time (and so possibly a window) could not hold them.
    #[must_use]
    pub fn add(&mut self, event_day: i64, t: &Totals) -> bool {
        let Some(all_time) = self.all_time.checked_add(t) else {
            return false;
        };
        self.all_time = all_time;
        if event_day == self.day {
            self.today.add(t);
        }
        if rollup::month_span(event_day).0 == self.month {
            self.this_month.add(t);
        }
        true
    }
}

#[derive(Default)]
pub struct Counters(RwLock<HashMap<TenantId, Windows>>);

impl Counters {
    /// The tenant's windows for `day`, when held and current.
    pub fn get(&self, tenant: TenantId, day: i64) -> Option<Windows> {
        self.0
            .read()
            .expect("counters lock is never poisoned")
            .get(&tenant)
            .filter(|w| w.day == day)
            .copied()
    }

    /// The tenant's windows for `day`: from memory when current, else read from the rollups.
    pub fn windows(&self, c: &Connection, tenant: TenantId, day: i64) -> rusqlite::Result<Windows> {
        match self.get(tenant, day) {
            Some(w) => Ok(w),
            None => Windows::load(c, &tenant.to_string(), day),
        }
    }

    pub(crate) fn put(&self, tenant: TenantId, w: Windows) {
        self.0
            .write()
            .expect("counters lock is never poisoned")
            .insert(tenant, w);
    }

    pub(crate) fn remove(&self, tenant: TenantId) {
        self.0
            .write()
            .expect("counters lock is never poisoned")
            .remove(&tenant);
    }
}
