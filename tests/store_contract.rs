//! The event store contract. Every backend runs this same suite (see `contract!` at the end):
//! optimistic concurrency, ordering, idempotency keys, live following, snapshots.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use telltale::clock::{SharedClock, SystemClock};
use telltale::store::memory::MemoryStore;
use telltale::store::sqlite::SqliteStore;
use telltale::store::{EventStore, ExpectedVersion, NewEvent, Snapshot, StoreError, follow};

fn event(n: i64) -> NewEvent {
    NewEvent { event_type: "TestHappened".into(), schema_version: 1, data: json!({ "n": n }), idempotency_key: None }
}

fn keyed(n: i64, key: &str) -> NewEvent {
    NewEvent { idempotency_key: Some(key.into()), ..event(n) }
}

mod cases {
    use super::*;

    pub async fn appends_and_reads_a_stream(store: Arc<dyn EventStore>) {
        let a = store.append("s-1", ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
        assert_eq!(a.stream_version, 2);
        assert_eq!(a.positions.len(), 2);
        assert!(a.positions[0] < a.positions[1]);
        let b = store.append("s-1", ExpectedVersion::Exact(2), vec![event(3)]).await.unwrap();
        assert_eq!(b.stream_version, 3);
        let read = store.read_stream("s-1", 0, 100).await.unwrap();
        assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(read.iter().map(|e| e.data["n"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(read.iter().all(|e| e.stream_id == "s-1" && e.event_type == "TestHappened" && e.schema_version == 1));
        assert_eq!(store.read_stream("s-1", 1, 1).await.unwrap()[0].version, 2);
        assert_eq!(store.stream_version("s-1").await.unwrap(), 3);
        assert_eq!(store.stream_version("unknown").await.unwrap(), 0);
        assert!(store.read_stream("unknown", 0, 10).await.unwrap().is_empty());
    }

    pub async fn a_wrong_expected_version_is_a_conflict_and_changes_nothing(store: Arc<dyn EventStore>) {
        store.append("s", ExpectedVersion::NoStream, vec![event(1)]).await.unwrap();
        let head = store.head().await.unwrap();
        for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(0), ExpectedVersion::Exact(2)] {
            match store.append("s", expected, vec![event(9)]).await {
                Err(StoreError::Conflict { stream, actual, .. }) => assert_eq!((stream.as_str(), actual), ("s", 1)),
                other => panic!("{expected:?}: {other:?}"),
            }
        }
        assert_eq!(store.head().await.unwrap(), head);
        assert_eq!(store.stream_version("s").await.unwrap(), 1);
        store.append("s", ExpectedVersion::Any, vec![event(2)]).await.unwrap();
        assert_eq!(store.stream_version("s").await.unwrap(), 2);
    }

    pub async fn read_all_follows_position_order_from_any_position(store: Arc<dyn EventStore>) {
        for i in 0..10 {
            let stream = format!("s-{}", i % 3);
            store.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
        }
        let all = store.read_all(0, 100).await.unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(all.iter().map(|e| e.data["n"].as_i64().unwrap()).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        let from = all[4].position;
        let rest = store.read_all(from, 3).await.unwrap();
        assert_eq!(
            rest.iter().map(|e| e.position).collect::<Vec<_>>(),
            all[5..8].iter().map(|e| e.position).collect::<Vec<_>>()
        );
        assert_eq!(store.head().await.unwrap(), all[9].position);
        let ids: BTreeSet<_> = all.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), 10, "event ids are unique");
    }

    pub async fn an_idempotency_key_is_unique_within_its_stream(store: Arc<dyn EventStore>) {
        store.append("s", ExpectedVersion::Any, vec![keyed(1, "k-1")]).await.unwrap();
        match store.append("s", ExpectedVersion::Any, vec![keyed(2, "k-1")]).await {
            Err(StoreError::DuplicateKey { key, .. }) => assert_eq!(key, "k-1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.stream_version("s").await.unwrap(), 1, "the refused append wrote nothing");
        store.append("other", ExpectedVersion::Any, vec![keyed(3, "k-1")]).await.unwrap();
        let found = store.find_by_idempotency_key("s", "k-1").await.unwrap().unwrap();
        assert_eq!(found.data["n"], 1);
        assert!(store.find_by_idempotency_key("s", "nope").await.unwrap().is_none());
    }

    pub async fn an_empty_append_changes_nothing(store: Arc<dyn EventStore>) {
        store.append("s", ExpectedVersion::Any, vec![event(1)]).await.unwrap();
        let a = store.append("s", ExpectedVersion::Exact(1), vec![]).await.unwrap();
        assert_eq!((a.stream_version, a.positions.len()), (1, 0));
    }

    pub async fn followers_see_new_events_live(store: Arc<dyn EventStore>) {
        let mut head = store.subscribe();
        let start = store.head().await.unwrap();
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut at = start;
                while seen.len() < 3 {
                    let batch = follow(&*store, &mut head, at, 10, Duration::from_secs(10)).await.unwrap();
                    for e in batch {
                        at = e.position;
                        seen.push(e.data["n"].as_i64().unwrap());
                    }
                }
                seen
            })
        };
        for i in 0..3 {
            store.append("live", ExpectedVersion::Any, vec![event(i)]).await.unwrap();
        }
        let seen = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
        assert_eq!(seen, [0, 1, 2]);
    }

    pub async fn concurrent_writers_of_one_stream_get_one_winner_per_version(store: Arc<dyn EventStore>) {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append("race", ExpectedVersion::Exact(0), vec![event(i)]).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.stream_version("race").await.unwrap(), 1);
    }

    /// Many concurrent appends while a follower reads: the follower never sees a position before
    /// every lower position is visible, so it never skips an event that committed late.
    pub async fn a_follower_never_skips_an_event_under_concurrent_appends(store: Arc<dyn EventStore>) {
        let writers: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    for j in 0..5 {
                        store.append(&format!("w-{i}"), ExpectedVersion::Any, vec![event(i * 100 + j)]).await.unwrap();
                    }
                })
            })
            .collect();
        let follower = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut head = store.subscribe();
                let mut at = 0;
                let mut seen = Vec::new();
                while seen.len() < 200 {
                    let batch = follow(&*store, &mut head, at, 7, Duration::from_secs(10)).await.unwrap();
                    for e in batch {
                        assert_eq!(e.position, at + 1, "a follower saw position {} right after {at}", e.position);
                        at = e.position;
                        seen.push(e.position);
                    }
                }
                seen
            })
        };
        for w in writers {
            w.await.unwrap();
        }
        let seen = tokio::time::timeout(Duration::from_secs(20), follower).await.unwrap().unwrap();
        assert_eq!(seen.len(), 200);
        assert_eq!(store.read_all(0, 1000).await.unwrap().len(), 200);
    }

    pub async fn snapshots_round_trip_and_never_go_back(store: Arc<dyn EventStore>) {
        assert!(store.load_snapshot("s").await.unwrap().is_none());
        store.save_snapshot("s", Snapshot { state_version: 1, version: 10, state: json!({"a": 1}) }).await.unwrap();
        store.save_snapshot("s", Snapshot { state_version: 1, version: 20, state: json!({"a": 2}) }).await.unwrap();
        let snap = store.load_snapshot("s").await.unwrap().unwrap();
        assert_eq!((snap.version, snap.state["a"].as_i64()), (20, Some(2)));
    }

    pub async fn streams_are_listed_by_prefix(store: Arc<dyn EventStore>) {
        for s in ["monitor:a:x", "monitor:a:y", "monitor:b:z", "client:a", "monitors-not"] {
            store.append(s, ExpectedVersion::Any, vec![event(1)]).await.unwrap();
        }
        assert_eq!(store.list_streams("monitor:").await.unwrap(), ["monitor:a:x", "monitor:a:y", "monitor:b:z"]);
        assert_eq!(store.list_streams("monitor:a:").await.unwrap(), ["monitor:a:x", "monitor:a:y"]);
        assert!(store.list_streams("nothing").await.unwrap().is_empty());
    }
}

macro_rules! contract {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            contract!(@case $open, appends_and_reads_a_stream);
            contract!(@case $open, a_wrong_expected_version_is_a_conflict_and_changes_nothing);
            contract!(@case $open, read_all_follows_position_order_from_any_position);
            contract!(@case $open, an_idempotency_key_is_unique_within_its_stream);
            contract!(@case $open, an_empty_append_changes_nothing);
            contract!(@case $open, followers_see_new_events_live);
            contract!(@case $open, concurrent_writers_of_one_stream_get_one_winner_per_version);
            contract!(@case $open, a_follower_never_skips_an_event_under_concurrent_appends);
            contract!(@case $open, snapshots_round_trip_and_never_go_back);
            contract!(@case $open, streams_are_listed_by_prefix);
        }
    };
    (@case $open:expr, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (store, _guard) = $open.await;
            cases::$case(store).await;
        }
    };
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn memory() -> (Arc<dyn EventStore>, ()) {
    (Arc::new(MemoryStore::new(clock())), ())
}

async fn sqlite() -> (Arc<dyn EventStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/log.db", dir.path().display());
    let store = SqliteStore::open(&url, clock(), Arc::default()).await.unwrap();
    (Arc::new(store), dir)
}

contract!(memory_backend, memory());
contract!(sqlite_backend, sqlite());

/// SQLite only: what is appended survives closing and reopening the file.
#[tokio::test]
async fn sqlite_appends_are_durable_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/log.db", dir.path().display());
    {
        let store = SqliteStore::open(&url, clock(), Arc::default()).await.unwrap();
        store.append("s", ExpectedVersion::NoStream, vec![event(1), event(2)]).await.unwrap();
    }
    let store = SqliteStore::open(&url, clock(), Arc::default()).await.unwrap();
    assert_eq!(store.stream_version("s").await.unwrap(), 2);
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 2);
}

/// SQLite only: appends made by another process (here: another handle on the same file) reach
/// this handle's followers through its poller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_followers_see_appends_of_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/log.db", dir.path().display());
    let ours = SqliteStore::open(&url, clock(), Arc::default()).await.unwrap();
    let theirs = SqliteStore::open(&url, clock(), Arc::default()).await.unwrap();
    let mut head = ours.subscribe();
    theirs.append("elsewhere", ExpectedVersion::Any, vec![event(1)]).await.unwrap();
    let batch = follow(&ours, &mut head, 0, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(batch.len(), 1);
    tokio::time::timeout(Duration::from_secs(5), async {
        while *head.borrow_and_update() < 1 {
            head.changed().await.unwrap();
        }
    })
    .await
    .expect("the poller announced the new head");
}
