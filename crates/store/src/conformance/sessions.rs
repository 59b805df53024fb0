//! App sessions: revocation by session, user, device and client.

use super::*;

pub async fn sessions_and_revocation(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let s1 = session(&r, &u, &c, now);
    let s2 = session(&r, &u, &c, now + 1);
    store
        .create_session(&s1, &refresh(&s1, "t1", now))
        .await
        .expect("s1");
    store
        .create_session(&s2, &refresh(&s2, "t2", now))
        .await
        .expect("s2");
    assert_eq!(store.session(&s1.id).await.expect("get"), Some(s1.clone()));
    let listed = store.user_sessions(&r.id, &u.id, now).await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![s2.id.clone(), s1.id.clone()]
    );
    assert_eq!(
        store.revoke_session(&s1.id, now + 5).await.expect("revoke"),
        Some(crate::SessionOwner {
            realm_id: r.id.clone(),
            user_id: u.id.clone(),
        })
    );
    assert!(store
        .revoke_session(&s1.id, now + 6)
        .await
        .expect("second revoke is a no-op")
        .is_none());
    let revoked = store
        .session(&s1.id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(revoked.revoked_at, Some(now + 5));
    assert!(!revoked.is_active(now + 10));
    assert_eq!(
        store
            .user_sessions(&r.id, &u.id, now)
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        store
            .revoke_user_sessions(&r.id, &u.id, now + 7)
            .await
            .expect("all")
            .len(),
        1
    );
    assert!(store
        .user_sessions(&r.id, &u.id, now)
        .await
        .expect("list")
        .is_empty());
}

pub async fn device_sessions_revoke_together(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let mk = |ctx: &str, device: &str| {
        let mut s = session(&r, &u, &c, now);
        s.context_name = Some(ctx.into());
        s.device_id = Some(device.into());
        s.origin = Some("https://app.example".into());
        s
    };
    let a1 = mk("A", "phone");
    let a2 = mk("A", "phone");
    let a_laptop = mk("A", "laptop");
    let b_phone = mk("B", "phone");
    for (i, s) in [&a1, &a2, &a_laptop, &b_phone].into_iter().enumerate() {
        store
            .create_session(s, &refresh(s, &format!("t{i}"), now))
            .await
            .expect("create");
    }
    let got = store.session(&a1.id).await.expect("get").expect("some");
    assert_eq!(got.context_name.as_deref(), Some("A"));
    assert_eq!(got.origin.as_deref(), Some("https://app.example"));
    let mut revoked = store
        .revoke_device_sessions(&r.id, &u.id, "A", "phone", now + 1)
        .await
        .expect("revoke");
    revoked.sort();
    let mut want = vec![a1.id.clone(), a2.id.clone()];
    want.sort();
    assert_eq!(revoked, want, "every session of the device, not the first");
    for (s, live) in [
        (&a1, false),
        (&a2, false),
        (&a_laptop, true),
        (&b_phone, true),
    ] {
        let got = store.session(&s.id).await.expect("get").expect("some");
        assert_eq!(got.is_active(now + 2), live, "{:?}", s.context_name);
    }
    assert!(store
        .revoke_device_sessions(&r.id, &u.id, "A", "phone", now + 3)
        .await
        .expect("again")
        .is_empty());
}

pub async fn client_sessions_revoke_together(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "r").await;
    let other = client(&r, "other");
    store.create_client(&other).await.expect("create client");
    let bob = user(&r, "bob");
    store.create_user(&bob).await.expect("create user");
    let now = now_ms();
    let a = session(&r, &u, &c, now);
    let b = session(&r, &bob, &c, now);
    let keep = session(&r, &u, &other, now);
    for (i, s) in [&a, &b, &keep].into_iter().enumerate() {
        store
            .create_session(s, &refresh(s, &format!("c{i}"), now))
            .await
            .expect("create");
    }
    let mut ended = store
        .revoke_client_sessions(&r.id, &c.id, now + 1)
        .await
        .expect("revoke");
    ended.sort();
    let mut want = vec![(u.id.clone(), a.id.clone()), (bob.id.clone(), b.id.clone())];
    want.sort();
    assert_eq!(ended, want);
    for (s, live) in [(&a, false), (&b, false), (&keep, true)] {
        let got = store.session(&s.id).await.expect("get").expect("some");
        assert_eq!(got.is_active(now + 2), live);
    }
    assert!(store
        .revoke_client_sessions(&r.id, &c.id, now + 3)
        .await
        .expect("again")
        .is_empty());
}
