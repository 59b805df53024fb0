//! Group commit as only SQLite does it: what lands in one batch, what a
//! failing write in a batch leaves, and what a crash between batches keeps.

use crate::SqliteStore;
use sqlx::Connection as _;
use std::sync::Arc;
use tessera_core::time::now_ms;
use tessera_core::TokenHash;
use tessera_store::conformance::{client, realm, refresh, session, user};
use tessera_store::{
    ClientMeta, ClientStore, RealmStore, RefreshTokenStore, RotateOutcome, SessionStore, Store,
    StoreError, UserStore,
};

async fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(&dir.path().join("tessera.db"))
            .await
            .expect("open sqlite"),
    )
}

/// A realm, client and user, and one session per secret holding it as its
/// first refresh token.
async fn sessions(store: &SqliteStore, secrets: &[&str]) -> Vec<tessera_core::Session> {
    let r = realm("batch");
    store.create_realm(&r).await.expect("realm");
    let c = client(&r, "app");
    store.create_client(&c).await.expect("client");
    let u = user(&r, "alice");
    store.create_user(&u).await.expect("user");
    let mut out = Vec::new();
    for secret in secrets {
        let s = session(&r, &u, &c, now_ms());
        store
            .create_session(&s, &refresh(&s, secret, now_ms()))
            .await
            .expect("session");
        out.push(s);
    }
    out
}

async fn rotate(
    store: &SqliteStore,
    s: &tessera_core::Session,
    old: &str,
    new: &str,
) -> RotateOutcome {
    store
        .rotate_refresh_token(
            &TokenHash::of(old),
            &refresh(s, new, now_ms()),
            now_ms(),
            &ClientMeta::default(),
        )
        .await
        .expect("rotate")
}

/// Waits until `n` writes have been sent to the writer in all.
async fn sent(store: &SqliteStore, n: u64) {
    while store.writer().stats().sent < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_queued_behind_a_commit_share_the_next_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let s = sessions(&store, &["contested"]).await.remove(0);
    let before = store.writer().stats();
    let release = store.writer().hold().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (store, s) = (store.clone(), s.clone());
        tasks.spawn(async move { rotate(&store, &s, "contested", &format!("next-{i}")).await });
    }
    sent(&store, before.sent + 10).await;
    release.send(()).expect("writer held");
    let mut winners = 0;
    while let Some(out) = tasks.join_next().await {
        match out.expect("join") {
            RotateOutcome::Rotated(_) => winners += 1,
            RotateOutcome::AlreadyRotated { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        winners, 1,
        "two rotations of one token in one batch: one wins"
    );
    let after = store.writer().stats();
    assert_eq!(
        after.batches - before.batches,
        2,
        "the held write's batch, then one batch of the ten queued behind it"
    );
    assert_eq!(after.writes - before.writes, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_is_rolled_back_alone_within_its_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let release = store.writer().hold().await;
    // Two statements and no transaction of its own: without the batch's
    // savepoint around it, its first insert would commit with the batch.
    let half = store.write(|conn| {
        Box::pin(async move {
            sqlx::query("INSERT INTO throttle (key, window_start, hits) VALUES ('half', 0, 1)")
                .execute(&mut *conn)
                .await
                .map_err(tessera_store::sql::map_db_error)?;
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut *conn)
                .await
                .map_err(tessera_store::sql::map_db_error)?;
            Ok(())
        })
    });
    let whole = store.write(|conn| {
        Box::pin(async move {
            sqlx::query("INSERT INTO throttle (key, window_start, hits) VALUES ('whole', 0, 1)")
                .execute(&mut *conn)
                .await
                .map_err(tessera_store::sql::map_db_error)?;
            Ok(())
        })
    });
    let waiting = tokio::spawn({
        let store = store.clone();
        async move {
            sent(&store, 2).await;
            release.send(()).expect("writer held");
        }
    });
    let (half, whole) = tokio::join!(half, whole);
    waiting.await.expect("join");
    assert!(matches!(half, Err(StoreError::Unexpected(_))), "{half:?}");
    whole.expect("the other write of the batch commits");
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM throttle ORDER BY key")
        .fetch_all(store.reader())
        .await
        .expect("read");
    assert_eq!(keys, ["whole"]);
}

/// A batch that fails as a whole (here: a write ends the transaction behind
/// the writer's back, so releasing its savepoint fails) leaves a connection
/// whose transaction depth sqlx no longer knows. The writer replaces it, so
/// the next write really commits: a reader sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_batch_writes_still_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let broken = store
        .write(|conn| {
            Box::pin(async move {
                sqlx::query("ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .map_err(tessera_store::sql::map_db_error)?;
                Ok(())
            })
        })
        .await;
    assert!(broken.is_err(), "the batch failed: {broken:?}");
    for key in ["after-1", "after-2"] {
        store
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO throttle (key, window_start, hits) VALUES ($1, 0, 1)")
                        .bind(key)
                        .execute(&mut *conn)
                        .await
                        .map_err(tessera_store::sql::map_db_error)?;
                    Ok(())
                })
            })
            .await
            .expect("write after the failed batch");
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM throttle ORDER BY key")
        .fetch_all(store.reader())
        .await
        .expect("read");
    assert_eq!(
        keys,
        ["after-1", "after-2"],
        "committed, visible to readers"
    );
    store.ping().await.expect("ready again");
}

const CRASH_DB: &str = "TESSERA_TEST_CRASH_DB";

/// Run by `a_crash_between_batches_keeps_every_answered_write` in a child
/// process: commits one rotation and reports it, queues another behind a
/// held writer, and aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a_crash_between_batches_keeps_every_answered_write"]
async fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_DB) else {
        return;
    };
    let store = Arc::new(
        SqliteStore::open(std::path::Path::new(&path))
            .await
            .expect("open"),
    );
    let s = sessions(&store, &["answered", "unanswered"]).await;
    let out = rotate(&store, &s[0], "answered", "answered-next").await;
    assert!(matches!(out, RotateOutcome::Rotated(_)));
    println!("ANSWERED");
    let _release = store.writer().hold().await;
    let queued = store.writer().stats().sent + 1;
    let (store2, s1) = (store.clone(), s[1].clone());
    tokio::spawn(async move { rotate(&store2, &s1, "unanswered", "unanswered-next").await });
    sent(&store, queued).await;
    std::process::abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_batches_keeps_every_answered_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tessera.db");
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["tests::crash_child", "--exact", "--ignored", "--nocapture"])
        .env(CRASH_DB, &path)
        .output()
        .expect("run the child");
    assert!(!child.status.success(), "the child aborts");
    assert!(
        String::from_utf8_lossy(&child.stdout).contains("ANSWERED"),
        "the child committed its first rotation: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let store = SqliteStore::open(&path).await.expect("reopen");
    let token = |s: &'static str| {
        let store = &store;
        async move { store.refresh_token(&TokenHash::of(s)).await.expect("get") }
    };
    assert!(token("answered").await.expect("kept").rotated_at.is_some());
    assert!(
        token("answered-next").await.is_some(),
        "an answered write survives"
    );
    assert_eq!(token("unanswered").await.expect("kept").rotated_at, None);
    assert!(
        token("unanswered-next").await.is_none(),
        "an unanswered write may be lost"
    );
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity check");
    assert_eq!(check, "ok");
}
