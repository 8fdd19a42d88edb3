//! Which replica runs the background duties that must not run everywhere at once (retention,
//! purge, statement finalization, `writer_commits` pruning; docs/SCALE_OUT.md §5.3). Each duty
//! asks `Pg::leads` before a sweep and skips it when another replica leads. Every duty is also
//! safe to run twice, so a lost lease costs a repeated sweep, never a wrong answer.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// This replica's view of whether it leads, shared by every clone of one `Pg`.
#[derive(Clone, Debug)]
pub struct Flag(Arc<AtomicBool>);

impl Default for Flag {
    /// A pool nobody elects (the commands, tests of one store function) leads: it is alone.
    fn default() -> Self {
        Flag(Arc::new(AtomicBool::new(true)))
    }
}

impl Flag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, leads: bool) {
        self.0.store(leads, Ordering::Release)
    }
}

impl super::Pg {
    /// Whether this replica should run the leader's duties now.
    pub fn leads(&self) -> bool {
        self.leader.get()
    }
}
