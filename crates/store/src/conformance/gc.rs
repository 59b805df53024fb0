//! Garbage collection: only what expired, in batches.

use super::*;

pub async fn purge_removes_only_expired(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let mut old = session(&r, &u, &c, now - 10_000);
    old.expires_at = now - 5_000;
    store
        .create_session(&old, &refresh(&old, "old", now - 10_000))
        .await
        .expect("old");
    let live = session(&r, &u, &c, now);
    store
        .create_session(&live, &refresh(&live, "live", now))
        .await
        .expect("live");
    let mut revoked = session(&r, &u, &c, now - 3 * 86_400_000);
    revoked.expires_at = now + 3_600_000;
    revoked.revoked_at = Some(now - 2 * 86_400_000);
    store
        .create_session(&revoked, &refresh(&revoked, "revoked", now))
        .await
        .expect("revoked");
    let recently_revoked = session(&r, &u, &c, now);
    store
        .create_session(
            &recently_revoked,
            &refresh(&recently_revoked, "recent", now),
        )
        .await
        .expect("recent");
    store
        .revoke_session(&recently_revoked.id, now)
        .await
        .expect("revoke");
    let removed = store.purge_expired(now, 100).await.expect("purge");
    assert_eq!(removed.refresh_tokens, 1, "the expired token goes");
    assert_eq!(
        removed.sessions, 2,
        "the expired session and the one revoked days ago go"
    );
    assert_eq!(store.session(&revoked.id).await.expect("get"), None);
    assert!(
        store
            .session(&recently_revoked.id)
            .await
            .expect("get")
            .is_some(),
        "a session revoked today stays, so reuse of its tokens is recognised"
    );
    assert_eq!(store.session(&old.id).await.expect("get"), None);
    assert_eq!(
        store
            .refresh_token(&TokenHash::of("old"))
            .await
            .expect("get"),
        None
    );
    assert!(store.session(&live.id).await.expect("get").is_some());
    assert!(store
        .refresh_token(&TokenHash::of("live"))
        .await
        .expect("get")
        .is_some());
    store.ping().await.expect("ping");
}

pub async fn purge_works_in_batches(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    for i in 0..7 {
        let mut old = session(&r, &u, &c, now - 10_000);
        old.expires_at = now - 5_000;
        store
            .create_session(&old, &refresh(&old, &format!("old{i}"), now - 10_000))
            .await
            .expect("old");
        store
            .spend_challenge(&challenge(&r, &format!("c{i}"), now - 1))
            .await
            .expect("challenge");
    }
    let live = challenge(&r, "live", now + 60_000);
    assert!(store.spend_challenge(&live).await.expect("live"));
    let mut batches = Vec::new();
    loop {
        let done = store.purge_expired(now, 3).await.expect("purge");
        batches.push(done);
        assert!(done.refresh_tokens <= 3 && done.sessions <= 3 && done.challenges <= 3);
        if done.refresh_tokens < 3 && done.sessions < 3 && done.challenges < 3 {
            break;
        }
    }
    let sum = batches.iter().fold(Purged::default(), |mut a, b| {
        a.add(b);
        a
    });
    // Refresh tokens also go with their sessions (cascade), so how many the
    // token statement itself removed depends on the order rows are met.
    assert_eq!((sum.sessions, sum.challenges), (7, 7));
    assert!(sum.refresh_tokens <= 7);
    for i in 0..7 {
        let gone = store
            .refresh_token(&TokenHash::of(&format!("old{i}")))
            .await
            .expect("get");
        assert_eq!(gone, None);
    }
    assert!(batches.len() >= 3, "{batches:?}");
    assert!(
        !store.spend_challenge(&live).await.expect("spend"),
        "a live spent challenge survives collection: it stays spent"
    );
}
