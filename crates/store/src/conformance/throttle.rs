//! Rate-limit windows shared by nodes.

use super::*;

pub async fn throttle_windows_are_shared(store: Arc<dyn Store>) {
    let now = now_ms();
    let (n, start) = store.hit("user/r/alice", now, 60_000).await.expect("hit");
    assert_eq!((n, start), (1, now));
    let (n, start2) = store
        .hit("user/r/alice", now + 10, 60_000)
        .await
        .expect("hit");
    assert_eq!((n, start2), (2, now), "the window keeps its start");
    assert_eq!(
        store
            .hit("user/r/bob", now + 10, 60_000)
            .await
            .expect("hit")
            .0,
        1,
        "keys count apart"
    );
    store.unhit("user/r/alice", now).await.expect("unhit");
    assert_eq!(
        store
            .hit("user/r/alice", now + 20, 60_000)
            .await
            .expect("hit")
            .0,
        2
    );
    store
        .unhit("user/r/alice", now - 1)
        .await
        .expect("unhit of an old window");
    assert_eq!(
        store
            .hit("user/r/alice", now + 30, 60_000)
            .await
            .expect("hit")
            .0,
        3
    );
    // The window ends: the next hit starts a new one.
    let (n, start) = store
        .hit("user/r/alice", now + 60_000, 60_000)
        .await
        .expect("hit");
    assert_eq!((n, start), (1, now + 60_000));
    store.clear_hits("user/r/alice").await.expect("clear");
    assert_eq!(
        store
            .hit("user/r/alice", now + 60_001, 60_000)
            .await
            .expect("hit"),
        (1, now + 60_001)
    );
    // Concurrent hits are all counted (nodes share one window).
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .hit("addr/10.0.0.1", now, 60_000)
                .await
                .expect("hit")
                .0
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("join"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=16).collect::<Vec<i64>>());
    let purged = store
        .purge_expired(now + 86_400_000 + 60_002, 100)
        .await
        .expect("purge");
    assert_eq!(purged.throttle, 3);
}
