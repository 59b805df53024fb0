//! Many writes at once. SQLite commits concurrent writes together (one
//! transaction and one fsync per batch); PostgreSQL runs each on its own
//! connection. Either way each write must behave as if it ran alone: races
//! still have one winner, and a write that fails fails alone.

use super::*;

/// Rotates `old` into `new` at `now`.
async fn rotate(store: &dyn Store, s: &Session, old: &str, new: &str, now: i64) -> RotateOutcome {
    store
        .rotate_refresh_token(
            &TokenHash::of(old),
            &refresh(s, new, now),
            now,
            &ClientMeta::default(),
        )
        .await
        .expect("no storage error while writes are batched")
}

pub async fn refresh_token_is_read_with_its_session(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "joined", now))
        .await
        .expect("session");
    let (token, read) = store
        .refresh_token_with_session(&TokenHash::of("joined"))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(token, refresh(&s, "joined", now));
    assert_eq!(read, s);
    rotate(store.as_ref(), &s, "joined", "joined-2", now + 5).await;
    let (spent, _) = store
        .refresh_token_with_session(&TokenHash::of("joined"))
        .await
        .expect("read")
        .expect("kept for reuse detection");
    assert_eq!(spent.rotated_at, Some(now + 5));
    assert_eq!(
        store
            .refresh_token_with_session(&TokenHash::of("never"))
            .await
            .expect("read"),
        None
    );
}

/// Several tokens, each contested by several concurrent rotations, while
/// other sessions are being created: per token exactly one rotation wins,
/// round after round (so contests land both inside one batch and across
/// batches), and a token spent in an earlier round stays spent.
pub async fn concurrent_rotations_in_and_across_batches(store: Arc<dyn Store>) {
    const CHAINS: usize = 4;
    const CONTENDERS: usize = 6;
    const ROUNDS: usize = 3;
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let mut chains = Vec::new();
    for chain in 0..CHAINS {
        let s = session(&r, &u, &c, now);
        let first = format!("chain-{chain}-round-0");
        store
            .create_session(&s, &refresh(&s, &first, now))
            .await
            .expect("session");
        chains.push((s, first));
    }
    for round in 1..=ROUNDS {
        let at = now + round as i64;
        let mut tasks = tokio::task::JoinSet::new();
        for (chain, (s, current)) in chains.iter().enumerate() {
            for i in 0..CONTENDERS {
                let (store, s, old) = (store.clone(), s.clone(), current.clone());
                let new = format!("chain-{chain}-round-{round}-{i}");
                tasks.spawn(async move {
                    let out = rotate(store.as_ref(), &s, &old, &new, at).await;
                    (chain, new, Some(out))
                });
            }
            if round > 1 {
                // Reuse of the token spent the round before.
                let (store, s) = (store.clone(), s.clone());
                let stale = format!("chain-{chain}-round-{}", round - 2);
                tasks.spawn(async move {
                    let out = rotate(store.as_ref(), &s, &stale, "never-stored", at).await;
                    assert!(
                        matches!(out, RotateOutcome::AlreadyRotated { .. }),
                        "a token spent in an earlier batch stays spent, got {out:?}"
                    );
                    (chain, String::new(), None)
                });
            }
        }
        for chain in 0..CHAINS {
            // Unrelated writes in the same batches.
            let (store, r, c, u) = (store.clone(), r.clone(), c.clone(), u.clone());
            tasks.spawn(async move {
                let s = session(&r, &u, &c, at);
                store
                    .create_session(&s, &refresh(&s, &format!("bystander-{round}-{chain}"), at))
                    .await
                    .expect("a bystander's write succeeds");
                (usize::MAX, String::new(), None)
            });
        }
        let mut winners = vec![Vec::new(); CHAINS];
        while let Some(done) = tasks.join_next().await {
            let (chain, new, out) = done.expect("join");
            match out {
                Some(RotateOutcome::Rotated(_)) => winners[chain].push(new),
                Some(RotateOutcome::AlreadyRotated { .. }) | None => {}
                Some(other) => panic!("unexpected outcome {other:?}"),
            }
        }
        for (chain, won) in winners.into_iter().enumerate() {
            assert_eq!(won.len(), 1, "round {round} chain {chain}: one winner");
            // The winner's successor is canonically renamed for the next
            // round: rotate it once more, uncontested.
            let (s, _) = &chains[chain];
            let next = format!("chain-{chain}-round-{round}");
            let out = rotate(store.as_ref(), s, &won[0], &next, at).await;
            assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
            chains[chain].1 = next;
        }
        for chain in 0..CHAINS {
            let bystander = TokenHash::of(&format!("bystander-{round}-{chain}"));
            assert!(store
                .refresh_token(&bystander)
                .await
                .expect("get")
                .is_some());
        }
    }
}

/// A write that fails among concurrent ones (a session whose first refresh
/// token collides with a stored one) fails alone and leaves nothing: its
/// session row is gone with it, while the writes around it are all kept.
pub async fn a_failing_write_fails_alone(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let taken = session(&r, &u, &c, now);
    store
        .create_session(&taken, &refresh(&taken, "taken", now))
        .await
        .expect("session");
    let mut tasks = tokio::task::JoinSet::new();
    let doomed = session(&r, &u, &c, now);
    for i in 0..12 {
        let (store, r, c, u, doomed) = (
            store.clone(),
            r.clone(),
            c.clone(),
            u.clone(),
            doomed.clone(),
        );
        tasks.spawn(async move {
            if i == 6 {
                let out = store
                    .create_session(&doomed, &refresh(&doomed, "taken", now))
                    .await;
                (None, out)
            } else {
                let s = session(&r, &u, &c, now);
                let out = store
                    .create_session(&s, &refresh(&s, &format!("ok-{i}"), now))
                    .await;
                (Some(s), out)
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done.expect("join") {
            (Some(s), out) => {
                out.expect("the other writes succeed");
                assert!(store.session(&s.id).await.expect("get").is_some());
            }
            (None, out) => assert!(
                matches!(out, Err(StoreError::Conflict(_))),
                "the colliding write fails with a conflict, got {out:?}"
            ),
        }
    }
    assert_eq!(
        store.session(&doomed.id).await.expect("get"),
        None,
        "the failed write's first statement is rolled back with it"
    );
    let out = rotate(store.as_ref(), &taken, "taken", "taken-2", now + 1).await;
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
}
