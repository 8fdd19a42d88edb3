//! Cross-replica cache invalidation on PostgreSQL (docs/SCALE_OUT.md §4.1): the listener against
//! a real cluster, its freshness, and what it does when its connection is killed.
use crate::helpers::{pg_connect, pg_database};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tenantry::db::pg::listen::{notify, Handlers, Invalidation, Listener, APPLICATION_NAME};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Change(Invalidation),
    Reload,
}

type Log = Arc<Mutex<Vec<(Instant, Seen)>>>;

/// A listener whose handlers log what they see, and a channel of the same, for waiting.
fn listen(url: &str) -> (Listener, Log, UnboundedReceiver<(Instant, Seen)>) {
    let log: Log = Arc::default();
    let (tx, rx) = unbounded_channel();
    let record = move |log: &Log, seen: Seen| {
        let at = Instant::now();
        log.lock().unwrap().push((at, seen.clone()));
        let _ = tx.send((at, seen));
    };
    let (l1, l2, r2) = (log.clone(), log.clone(), record.clone());
    let handlers = Handlers {
        on_change: Arc::new(move |what| {
            record(&l1, Seen::Change(what));
            Ok(())
        }),
        reload_all: Arc::new(move || {
            r2(&l2, Seen::Reload);
            Ok(())
        }),
    };
    let listener = Listener::start(url, handlers).unwrap();
    (listener, log, rx)
}

/// Waits for the next change the handler sees (reloads skipped).
async fn next_change(rx: &mut UnboundedReceiver<(Instant, Seen)>) -> (Instant, Invalidation) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some((at, Seen::Change(what)))) => return (at, what),
            Ok(Some((_, Seen::Reload))) => continue,
            other => panic!("no change within 1 s: {other:?}"),
        }
    }
}

async fn commit_notify(c: &mut tokio_postgres::Client, what: &Invalidation) -> Instant {
    let tx = c.transaction().await.unwrap();
    notify(&tx, what).await.unwrap();
    let before_commit = Instant::now();
    tx.commit().await.unwrap();
    before_commit
}

async fn wait_fresh(l: &Listener, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if l.is_fresh(Instant::now()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn a_committed_notify_reaches_every_replicas_listener_within_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, _, mut rx_a) = listen(&url);
    let (b, _, mut rx_b) = listen(&url);
    assert!(wait_fresh(&a, Duration::from_secs(5)).await);
    assert!(wait_fresh(&b, Duration::from_secs(5)).await);
    let mut c = pg_connect(&url).await;
    let mut delays = Vec::new();
    for i in 0..200u128 {
        let what = Invalidation::Tenant(Uuid::from_u128(i));
        let sent = commit_notify(&mut c, &what).await;
        for rx in [&mut rx_a, &mut rx_b] {
            let (at, got) = next_change(rx).await;
            assert_eq!(got, what);
            delays.push(at.duration_since(sent));
        }
    }
    delays.sort();
    let p = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    println!(
        "notify to handler over {} deliveries: p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        p(0.50),
        p(0.99),
        delays[delays.len() - 1]
    );
    assert!(delays[delays.len() - 1] < Duration::from_secs(1));
    // Each replica ignores the other's pings: both stayed fresh and heard nothing else.
    assert!(a.is_fresh(Instant::now()) && b.is_fresh(Instant::now()));
    assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
}

#[tokio::test]
async fn a_notify_in_a_rolled_back_transaction_never_arrives_and_unknown_kinds_are_ignored() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (l, log, mut rx) = listen(&url);
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    let mut c = pg_connect(&url).await;
    let tx = c.transaction().await.unwrap();
    notify(&tx, &Invalidation::Prices).await.unwrap();
    tx.rollback().await.unwrap();
    c.execute("SELECT pg_notify('tenantry_cache', 'colour:blue')", &[])
        .await
        .unwrap();
    let key = Invalidation::Key(Uuid::new_v4());
    commit_notify(&mut c, &key).await;
    // Delivery follows commit order: anything before the key's notification came first.
    assert_eq!(next_change(&mut rx).await.1, key);
    assert_eq!(
        log.lock().unwrap().iter().map(|s| &s.1).collect::<Vec<_>>(),
        [&Seen::Reload, &Seen::Change(key)]
    );
}

#[tokio::test]
async fn freshness_holds_steady_without_traffic() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (l, log, _rx) = listen(&url);
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    let start = Instant::now();
    let mut oldest = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(3) {
        let now = Instant::now();
        assert!(l.is_fresh(now), "stale after {:?}", start.elapsed());
        oldest = oldest.max(now.duration_since(l.fresh_as_of().unwrap()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("oldest fresh_as_of seen over 3 s idle: {oldest:?}");
    assert_eq!(l.sessions(), 1);
    assert_eq!(log.lock().unwrap().len(), 1, "one reload, nothing else");
}

/// Allows or refuses new connections to `url`'s database (open ones stay), from the cluster's
/// own database: a database cannot refuse connections to itself.
async fn allow_connections(url: &str, allow: bool) {
    let (_, db) = url.rsplit_once('/').unwrap();
    let base = std::env::var("TENANTRY_TEST_DATABASE_URL").unwrap();
    pg_connect(&base)
        .await
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}"))
        .await
        .unwrap();
}

/// Kills the listener's backend and keeps it out until `allow_connections(url, true)`.
async fn kill_listener(url: &str, c: &tokio_postgres::Client) {
    allow_connections(url, false).await;
    let killed = c
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one listener backend");
}

#[tokio::test]
async fn a_killed_listener_goes_stale_then_reconnects_reloads_and_is_fresh_again() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (l, log, mut rx) = listen(&url);
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    let mut c = pg_connect(&url).await;
    kill_listener(&url, &c).await;
    let killed = Instant::now();
    while l.is_fresh(Instant::now()) {
        assert!(killed.elapsed() < Duration::from_secs(1), "still fresh");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stale_after = killed.elapsed();
    // Changes committed while the listener is away are never delivered to it...
    let missed = Invalidation::Tenant(Uuid::new_v4());
    let missed_at = commit_notify(&mut c, &missed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!l.is_fresh(Instant::now()), "fresh while disconnected");
    assert_eq!(l.sessions(), 1);
    allow_connections(&url, true).await;
    let reopened = Instant::now();
    assert!(wait_fresh(&l, Duration::from_secs(5)).await, "fresh again");
    println!(
        "stale {stale_after:?} after the kill; fresh again {:?} after connections reopened",
        reopened.elapsed()
    );
    assert_eq!(l.sessions(), 2);
    // ...so they are covered by the reload after the reconnect, which started after they
    // were committed (and the listener is fresh only from pings applied after the reload).
    let log = log.lock().unwrap().clone();
    let seen: Vec<_> = log.iter().map(|s| &s.1).collect();
    assert_eq!(seen, [&Seen::Reload, &Seen::Reload], "{log:?}");
    assert!(log[1].0 > missed_at);
    // And delivery works on the new connection.
    let after = Invalidation::Settings(Uuid::new_v4());
    commit_notify(&mut c, &after).await;
    assert_eq!(next_change(&mut rx).await.1, after);
}

/// Resumes a stopped backend whatever the test's outcome; once resumed, it finds its client
/// gone and exits.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid and a signal number has no memory effects.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[tokio::test]
async fn a_listener_whose_connection_goes_silent_replaces_it() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (l, log, _rx) = listen(&url);
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    let c = pg_connect(&url).await;
    let pid: i32 = c
        .query_one(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    // A stopped backend neither answers nor closes the socket: a silent network partition.
    // SAFETY: as in Resume::drop.
    if unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
        eprintln!("skipped: cannot signal the cluster's backends from this user");
        return;
    }
    let _resume = Resume(pid);
    let stopped = Instant::now();
    while l.is_fresh(Instant::now()) {
        assert!(stopped.elapsed() < Duration::from_secs(1), "still fresh");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stale_after = stopped.elapsed();
    while !(l.sessions() == 2 && l.is_fresh(Instant::now())) {
        assert!(stopped.elapsed() < Duration::from_secs(5), "not replaced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "silent connection: stale after {stale_after:?}, fresh on a new one after {:?}",
        stopped.elapsed()
    );
    let seen: Vec<_> = log.lock().unwrap().iter().map(|s| s.1.clone()).collect();
    assert_eq!(seen, [Seen::Reload, Seen::Reload]);
}

#[tokio::test]
async fn a_failing_handler_makes_the_listener_start_over_with_a_reload() {
    let Some(url) = pg_database().await else {
        return;
    };
    let log: Log = Arc::default();
    let poison = Invalidation::Tenant(Uuid::new_v4());
    let (l1, l2, p) = (log.clone(), log.clone(), poison.clone());
    let reloads = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let handlers = Handlers {
        // Say the store could not be read for this one.
        on_change: Arc::new(move |what| {
            l1.lock()
                .unwrap()
                .push((Instant::now(), Seen::Change(what.clone())));
            if what == p {
                return Err("the store did not answer".into());
            }
            Ok(())
        }),
        // The first reload fails too.
        reload_all: Arc::new(move || {
            l2.lock().unwrap().push((Instant::now(), Seen::Reload));
            match reloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err("the store did not answer".into()),
                _ => Ok(()),
            }
        }),
    };
    let l = Listener::start(&url, handlers).unwrap();
    // It is never fresh on a failed reload: it starts over, and the second reload works.
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    assert_eq!(l.sessions(), 2);
    let mut c = pg_connect(&url).await;
    commit_notify(&mut c, &poison).await;
    let failed = Instant::now();
    let start = Instant::now();
    // Fresh again from a ping sent after the failure (the earlier pings still count for their
    // 750 ms: every change committed before them was applied).
    while l.sessions() < 3 || l.fresh_as_of().is_none_or(|f| f < failed) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "did not start over"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen: Vec<_> = log.lock().unwrap().iter().map(|s| s.1.clone()).collect();
    assert_eq!(
        seen,
        [
            Seen::Reload,
            Seen::Reload,
            Seen::Change(poison),
            Seen::Reload
        ]
    );
}

#[tokio::test]
async fn dropping_a_listener_stops_it_at_once_even_mid_connect() {
    // A server that accepts and never answers: the listener hangs in the startup handshake.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://tenantry@{}/none", mute.local_addr().unwrap());
    let never = Handlers {
        on_change: Arc::new(|_| Ok(())),
        reload_all: Arc::new(|| Ok(())),
    };
    let l = Listener::start(&url, never).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!l.is_fresh(Instant::now()));
    assert_eq!(l.sessions(), 0);
    let start = Instant::now();
    drop(l);
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_handler_that_reads_the_store_sees_the_change_it_was_told_of() {
    let Some(url) = pg_database().await else {
        return;
    };
    let mut c = pg_connect(&url).await;
    c.batch_execute("CREATE TABLE things (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO things VALUES (1, 0)")
        .await
        .unwrap();
    let (tx, mut rx) = unbounded_channel();
    let read_url = url.clone();
    let handlers = Handlers {
        // As a cache would: on a notification, read the entity from the store. On its own
        // runtime, since handlers may block.
        on_change: Arc::new(move |_| {
            let v: i32 = tenantry::db::pg::block_on(async {
                let (client, conn) = tokio_postgres::connect(&read_url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let row = client
                    .query_one("SELECT v FROM things WHERE id = 1", &[])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(row.get(0))
            })??;
            let _ = tx.send(v);
            Ok(())
        }),
        reload_all: Arc::new(|| Ok(())),
    };
    let l = Listener::start(&url, handlers).unwrap();
    assert!(wait_fresh(&l, Duration::from_secs(5)).await);
    for i in 1..=50 {
        let t = c.transaction().await.unwrap();
        t.execute("UPDATE things SET v = $1 WHERE id = 1", &[&i])
            .await
            .unwrap();
        notify(&t, &Invalidation::Settings(Uuid::nil()))
            .await
            .unwrap();
        t.commit().await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, i, "the handler read an older value");
    }
}
