//! Cross-replica cache invalidation (docs/SCALE_OUT.md §4.1). A write that changes a cached
//! entity calls [`notify`] in its transaction; PostgreSQL delivers the notification on commit, in
//! commit order, to every replica's [`Listener`], which hands it to the replica's handler.
//!
//! Freshness: every 250 ms the listener notifies itself a ping on the same channel. Because
//! delivery follows commit order, when a ping comes back (and the handlers for everything before
//! it have returned) every change committed before the ping was sent has been applied: its send
//! time becomes `fresh_as_of`. A replica whose listener is not fresh (750 ms without a returned
//! ping) must not trust its caches for access decisions. A lost connection is reconnected with
//! backoff; after `LISTEN` the listener calls `reload_all` (changes made while it was away were
//! never delivered) and trusts again only when a ping sent after the reload returns.
//!
//! The listener runs on a thread of its own with a one-thread runtime, so it depends on none of
//! the server's per-worker runtimes. Handlers run one at a time, in delivery order, on a blocking
//! thread: they may block (read the store, even `block_on` another runtime).
pub use super::notify::{notify, Invalidation, CHANNEL};
use super::{describe, parse_url};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// How often the listener pings itself.
pub const PING_EVERY: Duration = Duration::from_millis(250);
/// How old `fresh_as_of` may be before the caches are not trusted: three pings, so one slow
/// round trip does not flap, and staleness stays under the contract's second.
pub const FRESH_FOR: Duration = Duration::from_millis(750);
/// No ping back for this long on a connection that looks open (a silent network partition):
/// the connection is treated as lost and replaced.
const SILENT_FOR: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The `application_name` of the listener's connection, so operators can tell it apart.
pub const APPLICATION_NAME: &str = "tenantry-listener";

/// A handler's failure (say, the store could not be read) leaves a cache it cannot vouch for:
/// the listener then drops its connection and starts over, with a `reload_all`, and is not fresh
/// until that reload succeeds and a ping comes back. A panic counts as a failure.
pub type OnChange = Arc<dyn Fn(Invalidation) -> Result<(), String> + Send + Sync>;
pub type OnReload = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the replica does with what the listener hears.
#[derive(Clone)]
pub struct Handlers {
    /// Reload (or evict) the one entity named; idempotent and order-free.
    pub on_change: OnChange,
    /// Reload every cache, as at start: called after each `LISTEN`, the first included, since
    /// changes committed before it were never delivered to this connection.
    pub reload_all: OnReload,
}

#[derive(Default)]
struct Shared {
    fresh_as_of: Mutex<Option<Instant>>,
    /// Successful `LISTEN`s (each followed by a `reload_all`): 1 after the first connect.
    sessions: AtomicU64,
}

enum Event {
    Stop,
    /// The session with this number lost its connection, or a handler failed in it.
    Lost(u64, String),
}

/// One replica's listener; dropping it stops the thread and closes the connection.
pub struct Listener {
    shared: Arc<Shared>,
    events: UnboundedSender<Event>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Starts listening on its own connection to `url` (a direct one: PgBouncer in transaction
    /// mode cannot carry `LISTEN`). Returns at once; see [`Listener::wait_fresh`].
    pub fn start(url: &str, handlers: Handlers) -> Result<Listener, String> {
        let mut config = parse_url(url)?;
        config.application_name(APPLICATION_NAME);
        config.connect_timeout(CONNECT_TIMEOUT);
        let shared = Arc::new(Shared::default());
        let (events, rx) = unbounded_channel();
        let (s, tx) = (shared.clone(), events.clone());
        let thread = std::thread::Builder::new()
            .name("pg-listener".into())
            .spawn(move || run(config, handlers, s, tx, rx))
            .map_err(|e| format!("cannot start the listener thread: {e}"))?;
        Ok(Listener {
            shared,
            events,
            thread: Some(thread),
        })
    }

    /// The send time of the newest ping that came back: every change committed before it has
    /// been handled.
    pub fn fresh_as_of(&self) -> Option<Instant> {
        *self
            .shared
            .fresh_as_of
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the caches may be trusted at `now`. Monotonic time, not the app's clock (which
    /// tests move): freshness is about how long ago the listener last heard the database.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_as_of()
            .is_some_and(|f| now.saturating_duration_since(f) <= FRESH_FOR)
    }

    /// How many connections have been listened on and reloaded so far.
    pub fn sessions(&self) -> u64 {
        self.shared.sessions.load(Ordering::SeqCst)
    }

    /// Waits (blocking) up to `limit` for the listener to be fresh.
    pub fn wait_fresh(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.is_fresh(Instant::now()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    config: tokio_postgres::Config,
    handlers: Handlers,
    shared: Arc<Shared>,
    events: UnboundedSender<Event>,
    mut rx: UnboundedReceiver<Event>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cache listener cannot start a runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let me = Uuid::new_v4().simple().to_string();
        let mut backoff = BACKOFF_FIRST;
        for number in 1.. {
            let s = Session {
                number,
                me: &me,
                config: &config,
                handlers: &handlers,
                shared: &shared,
                events: &events,
            };
            let fresh_before = *shared.fresh_as_of.lock().unwrap_or_else(|p| p.into_inner());
            match s.run(&mut rx).await {
                Ended::Stopped => return,
                Ended::Lost(why) => {
                    tracing::warn!("cache listener lost its connection ({why}); reconnecting");
                    // A session that got fresh worked: the next starts soon. One that failed
                    // before (a reload that keeps failing) backs off like a failed connect.
                    let fresh = *shared.fresh_as_of.lock().unwrap_or_else(|p| p.into_inner());
                    if fresh != fresh_before {
                        backoff = BACKOFF_FIRST;
                    }
                }
                Ended::NotConnected(why) => {
                    tracing::warn!(
                        "cache listener cannot connect ({why}); retrying in {backoff:?}"
                    );
                }
            }
            // Session numbers start at 1: only a stop ends this wait early.
            if unless_ended(&mut rx, 0, tokio::time::sleep(backoff))
                .await
                .is_err()
            {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
}

enum Ended {
    Stopped,
    Lost(String),
    NotConnected(String),
}

/// Our pings in flight, and when the last one came back.
struct Pings {
    sent: VecDeque<(u64, Instant)>,
    last_back: Instant,
}

/// Work for the applier, in delivery order.
enum Work {
    Change(Invalidation),
    ReloadAll,
    /// One of our pings came back; it was sent at this time.
    PingBack(Instant),
}

struct Session<'a> {
    number: u64,
    me: &'a str,
    config: &'a tokio_postgres::Config,
    handlers: &'a Handlers,
    shared: &'a Arc<Shared>,
    events: &'a UnboundedSender<Event>,
}

impl Session<'_> {
    async fn run(self, rx: &mut UnboundedReceiver<Event>) -> Ended {
        let n = self.number;
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(super::tls()));
        let connected = unless_ended(rx, n, connect).await;
        let (client, conn) = match connected {
            Err(ended) => return ended,
            Ok(Ok(Ok(pair))) => pair,
            Ok(Ok(Err(e))) => return Ended::NotConnected(describe(&e)),
            Ok(Err(_)) => return Ended::NotConnected("timed out".into()),
        };
        let pings = Arc::new(Mutex::new(Pings {
            sent: VecDeque::new(),
            last_back: Instant::now(),
        }));
        let (work, work_rx) = unbounded_channel();
        let (handlers, shared, events) = (self.handlers, self.shared, self.events);
        let applier = tokio::spawn(apply(
            work_rx,
            handlers.clone(),
            shared.clone(),
            events.clone(),
            n,
        ));
        let own_ping = format!("ping:{}:", self.me);
        let driver = tokio::spawn(drive(
            conn,
            own_ping.clone(),
            pings.clone(),
            work.clone(),
            events.clone(),
            n,
        ));
        let sql = format!("LISTEN {CHANNEL}");
        let listen = tokio::time::timeout(SILENT_FOR, client.batch_execute(&sql));
        let listened = unless_ended(rx, n, listen).await;
        let mut pinger = None;
        let ended = match listened {
            Err(ended) => ended,
            Ok(Ok(Err(e))) => Ended::NotConnected(describe(&e)),
            Ok(Err(_)) => Ended::NotConnected("LISTEN timed out".into()),
            Ok(Ok(Ok(()))) => {
                // Everything committed before LISTEN is in the reload; everything after is
                // delivered. Pings start after the reload is queued, so none returns before it.
                let _ = work.send(Work::ReloadAll);
                shared.sessions.fetch_add(1, Ordering::SeqCst);
                pinger = Some(tokio::spawn(ping(
                    client,
                    own_ping,
                    pings,
                    events.clone(),
                    n,
                )));
                match unless_ended(rx, n, std::future::pending::<()>()).await {
                    Err(ended) => ended,
                    Ok(()) => unreachable!("pending() never completes"),
                }
            }
        };
        drop(work);
        if let Some(p) = pinger {
            p.abort();
        }
        driver.abort();
        // The applier ends once the driver's queue handle is gone; waiting for it means no
        // handler of this session still runs when the next session's reload starts.
        let _ = driver.await;
        let _ = applier.await;
        ended
    }
}

/// Runs `f` unless the listener is stopped, or session `n` is lost, first.
async fn unless_ended<F: Future>(
    rx: &mut UnboundedReceiver<Event>,
    n: u64,
    f: F,
) -> Result<F::Output, Ended> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        loop {
            return match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None | Some(Event::Stop)) => Poll::Ready(Err(Ended::Stopped)),
                Poll::Ready(Some(Event::Lost(session, why))) if session == n => {
                    Poll::Ready(Err(Ended::Lost(why)))
                }
                // A finished session's late report.
                Poll::Ready(Some(Event::Lost(..))) => continue,
            };
        }
    })
    .await
}

/// Drives the connection: notifications become work, our own pings become freshness.
async fn drive(
    mut conn: tokio_postgres::Connection<tokio_postgres::Socket, super::TlsStream>,
    own_ping: String,
    pings: Arc<Mutex<Pings>>,
    work: UnboundedSender<Work>,
    events: UnboundedSender<Event>,
    session: u64,
) {
    loop {
        let message = std::future::poll_fn(|cx| conn.poll_message(cx)).await;
        let n = match message {
            Some(Ok(AsyncMessage::Notification(n))) => n,
            Some(Ok(_notice)) => continue,
            Some(Err(e)) => {
                let _ = events.send(Event::Lost(session, describe(&e)));
                return;
            }
            None => {
                let _ = events.send(Event::Lost(session, "connection closed".into()));
                return;
            }
        };
        let payload = n.payload();
        if let Some(number) = payload.strip_prefix(&own_ping) {
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            let mut p = pings.lock().unwrap_or_else(|p| p.into_inner());
            let sent = p.sent.iter().find(|(k, _)| *k == number).map(|(_, at)| *at);
            p.sent.retain(|(k, _)| *k > number);
            if sent.is_some() {
                p.last_back = Instant::now();
            }
            drop(p);
            if let Some(sent) = sent {
                let _ = work.send(Work::PingBack(sent));
            }
        } else if payload.starts_with("ping:") {
            // Another replica's ping.
        } else if let Some(what) = Invalidation::parse(payload) {
            let _ = work.send(Work::Change(what));
        } else {
            tracing::debug!(
                payload,
                "cache listener ignores a notification it does not know"
            );
        }
    }
}

/// Runs the handlers one at a time, in order, off the runtime's thread. Stops at the first
/// failure, so no later ping makes the listener fresh, and has the session start over.
async fn apply(
    mut work: UnboundedReceiver<Work>,
    handlers: Handlers,
    shared: Arc<Shared>,
    events: UnboundedSender<Event>,
    session: u64,
) {
    while let Some(w) = work.recv().await {
        let done = match w {
            Work::Change(what) => {
                let h = handlers.on_change.clone();
                tokio::task::spawn_blocking(move || h(what)).await
            }
            Work::ReloadAll => {
                let h = handlers.reload_all.clone();
                tokio::task::spawn_blocking(move || h()).await
            }
            Work::PingBack(sent) => {
                let mut f = shared.fresh_as_of.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none_or(|f| f < sent) {
                    *f = Some(sent);
                }
                Ok(Ok(()))
            }
        };
        let why = match done {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(panicked) => panicked.to_string(),
        };
        let _ = events.send(Event::Lost(
            session,
            format!("a cache handler failed: {why}"),
        ));
        return;
    }
}

/// Sends a ping every `PING_EVERY`; reports the connection lost when a ping cannot be sent or
/// none has come back for `SILENT_FOR`.
async fn ping(
    client: tokio_postgres::Client,
    prefix: String,
    pings: Arc<Mutex<Pings>>,
    events: UnboundedSender<Event>,
    session: u64,
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for number in 1u64.. {
        tick.tick().await;
        let sent = Instant::now();
        {
            let mut p = pings.lock().unwrap_or_else(|p| p.into_inner());
            p.sent.push_back((number, sent));
            // Pings that never came back are forgotten after a while; memory stays bounded.
            while p.sent.len() > 64 {
                p.sent.pop_front();
            }
        }
        let payload = format!("{prefix}{number}");
        let why = match tokio::time::timeout(
            SILENT_FOR,
            client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]),
        )
        .await
        {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(describe(&e)),
            Err(_) => Some("a ping timed out".to_string()),
        };
        // Measured where pings arrive, not where they are applied: a long reload is not a
        // lost connection.
        let last = pings.lock().unwrap_or_else(|p| p.into_inner()).last_back;
        let why = why.or_else(|| {
            (sent.saturating_duration_since(last) > SILENT_FOR)
                .then(|| "no ping came back".to_string())
        });
        if let Some(why) = why {
            let _ = events.send(Event::Lost(session, why));
            return;
        }
    }
}
