//! Refresh tokens: rotation, reuse, races and what a dead session does to them.

use super::*;

pub async fn refresh_rotation_and_reuse(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "first", now))
        .await
        .expect("session");
    let stored = store
        .refresh_token(&TokenHash::of("first"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.session_id, s.id);
    assert_eq!(stored.rotated_at, None);
    let meta = ClientMeta {
        ip: Some("10.9.8.7".into()),
        user_agent: Some("ua/2".into()),
    };
    let out = store
        .rotate_refresh_token(
            &TokenHash::of("first"),
            &refresh(&s, "second", now + 10),
            now + 10,
            &meta,
        )
        .await
        .expect("rotate");
    let RotateOutcome::Rotated(after) = out else {
        panic!("expected Rotated, got {out:?}")
    };
    assert_eq!(after.id, s.id);
    assert_eq!(after.last_used_at, now + 10);
    assert_eq!(after.ip.as_deref(), Some("10.9.8.7"));
    assert_eq!(after.user_agent.as_deref(), Some("ua/2"));
    let spent = store
        .refresh_token(&TokenHash::of("first"))
        .await
        .expect("get")
        .expect("kept for reuse detection");
    assert_eq!(spent.rotated_at, Some(now + 10));
    let again = store
        .rotate_refresh_token(
            &TokenHash::of("first"),
            &refresh(&s, "third", now + 20),
            now + 20,
            &ClientMeta::default(),
        )
        .await
        .expect("reuse");
    assert_eq!(
        again,
        RotateOutcome::AlreadyRotated {
            session_id: s.id.clone(),
            rotated_at: now + 10
        }
    );
    assert_eq!(
        store
            .refresh_token(&TokenHash::of("third"))
            .await
            .expect("get"),
        None,
        "nothing stored on reuse"
    );
    let unknown = store
        .rotate_refresh_token(
            &TokenHash::of("never"),
            &refresh(&s, "x", now),
            now,
            &ClientMeta::default(),
        )
        .await
        .expect("unknown");
    assert_eq!(unknown, RotateOutcome::Unknown);
}

pub async fn concurrent_rotation_has_one_winner(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "contested", now))
        .await
        .expect("session");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh_token(
                    &TokenHash::of("contested"),
                    &refresh(&s, &format!("next-{i}"), now + 1),
                    now + 1,
                    &ClientMeta::default(),
                )
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t
            .await
            .expect("join")
            .expect("no storage error under contention")
        {
            RotateOutcome::Rotated(_) => winners += 1,
            RotateOutcome::AlreadyRotated { .. } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent rotation may win");
    let mut live = 0;
    for i in 0..16 {
        if store
            .refresh_token(&TokenHash::of(&format!("next-{i}")))
            .await
            .expect("get")
            .is_some()
        {
            live += 1;
        }
    }
    assert_eq!(live, 1, "exactly one successor token is stored");
}

pub async fn rotation_of_revoked_or_expired_is_inactive(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "a", now))
        .await
        .expect("session");
    store.revoke_session(&s.id, now + 1).await.expect("revoke");
    let out = store
        .rotate_refresh_token(
            &TokenHash::of("a"),
            &refresh(&s, "b", now + 2),
            now + 2,
            &ClientMeta::default(),
        )
        .await
        .expect("rotate");
    assert_eq!(out, RotateOutcome::Inactive);
    assert_eq!(
        store.refresh_token(&TokenHash::of("b")).await.expect("get"),
        None
    );

    let mut short = session(&r, &u, &c, now);
    short.expires_at = now + 100;
    store
        .create_session(&short, &refresh(&short, "c", now))
        .await
        .expect("short");
    let out = store
        .rotate_refresh_token(
            &TokenHash::of("c"),
            &refresh(&short, "d", now + 200),
            now + 200,
            &ClientMeta::default(),
        )
        .await
        .expect("rotate");
    assert_eq!(out, RotateOutcome::Inactive);
}

pub async fn touch_and_extending_rotation(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "first", now))
        .await
        .expect("create");
    let meta = ClientMeta {
        ip: Some("10.0.0.9".into()),
        user_agent: None,
    };
    let touched = store
        .touch_session(&s.id, now + 5, &meta)
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(touched.last_used_at, now + 5);
    assert_eq!(touched.ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(touched.user_agent.as_deref(), Some("test"));
    // A token that outlives its session extends the session to it.
    let mut next = refresh(&s, "second", now + 6);
    next.expires_at = s.expires_at + 86_400_000;
    match store
        .rotate_refresh_token(
            &TokenHash::of("first"),
            &next,
            now + 6,
            &ClientMeta::default(),
        )
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(got) => assert_eq!(got.expires_at, next.expires_at),
        other => panic!("{other:?}"),
    }
    // One that expires sooner leaves it alone.
    let mut third = refresh(&s, "third", now + 7);
    third.expires_at = now + 1_000;
    match store
        .rotate_refresh_token(
            &TokenHash::of("second"),
            &third,
            now + 7,
            &ClientMeta::default(),
        )
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(got) => assert_eq!(got.expires_at, next.expires_at),
        other => panic!("{other:?}"),
    }
    store.revoke_session(&s.id, now + 8).await.expect("revoke");
    assert_eq!(
        store
            .touch_session(&s.id, now + 9, &meta)
            .await
            .expect("touch"),
        None,
        "a revoked session is not touched"
    );
}
