//! Upstream providers: states taken once, sign-ups, connections.

use super::*;

pub async fn provider_states_are_taken_once(store: Arc<dyn Store>) {
    let now = now_ms();
    let state = |id: &str, expires_at| ProviderState {
        id: id.to_string(),
        provider: "acme".into(),
        secret: "sealed".into(),
        created_at: now,
        expires_at,
    };
    store
        .insert_provider_state(&state("s1", now + 600_000))
        .await
        .expect("insert");
    store
        .insert_provider_state(&state("old", now - 1))
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.take_provider_state("s1", now).await.expect("take")
        }));
    }
    let mut taken = Vec::new();
    for t in tasks {
        taken.extend(t.await.expect("join"));
    }
    assert_eq!(taken, vec![state("s1", now + 600_000)], "exactly one taker");
    assert_eq!(
        store.take_provider_state("old", now).await.expect("take"),
        None
    );
    assert_eq!(
        store.take_provider_state("nope", now).await.expect("take"),
        None
    );
    store
        .insert_provider_state(&state("gc", now - 1))
        .await
        .expect("insert");
    let purged = store.purge_expired(now, 100).await.expect("purge");
    assert_eq!(purged.connect, 1, "expired states are collected");
}

pub async fn signups_complete_then_spend_once(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "signups").await;
    let now = now_ms();
    let signup = |token: &str, expires_at| Signup {
        hash: TokenHash::of(token),
        realm_id: r.id.clone(),
        client_id: c.id.clone(),
        provider: "acme".into(),
        user_id: None,
        error: None,
        created_at: now,
        expires_at,
        completed_at: None,
        spent_at: None,
    };
    let open = signup("t1", now + 600_000);
    store.insert_signup(&open).await.expect("insert");
    assert!(matches!(
        store.insert_signup(&open).await,
        Err(StoreError::Conflict(_))
    ));
    let s = session_for(&r, &u, &c, "signup-session", "none", now);
    assert!(
        !store
            .spend_signup(&open.hash, now, &s, &refresh(&s, "rt", now))
            .await
            .expect("spend"),
        "not completed yet"
    );
    assert!(store
        .complete_signup(&open.hash, Some(&u.id), None, now)
        .await
        .expect("complete"));
    assert!(
        !store
            .complete_signup(&open.hash, None, Some("access_denied"), now)
            .await
            .expect("complete"),
        "completed once"
    );
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let s = s.clone();
        let hash = open.hash.clone();
        tasks.push(tokio::spawn(async move {
            store
                .spend_signup(&hash, now + 1, &s, &refresh(&s, &format!("rt{i}"), now))
                .await
                .expect("spend")
        }));
    }
    let mut spent = 0;
    for t in tasks {
        spent += usize::from(t.await.expect("join"));
    }
    assert_eq!(spent, 1, "exactly one spender");
    assert!(store
        .session("signup-session")
        .await
        .expect("read")
        .is_some());
    let read = store.signup(&open.hash).await.expect("read").expect("kept");
    assert_eq!(read.user_id.as_deref(), Some(u.id.as_str()));
    assert!(read.completed_at.is_some() && read.spent_at.is_some());

    let denied = signup("t2", now + 600_000);
    store.insert_signup(&denied).await.expect("insert");
    assert!(store
        .complete_signup(&denied.hash, None, Some("access_denied"), now)
        .await
        .expect("complete"));
    let s2 = session_for(&r, &u, &c, "denied-session", "none", now);
    assert!(!store
        .spend_signup(&denied.hash, now, &s2, &refresh(&s2, "rt-d", now))
        .await
        .expect("spend"));
    let late = signup("t3", now - 1);
    store.insert_signup(&late).await.expect("insert");
    assert!(!store
        .complete_signup(&late.hash, Some(&u.id), None, now)
        .await
        .expect("complete"));
}

pub async fn provider_connections_and_identities(store: Arc<dyn Store>) {
    let (r, _c, u) = fixture(store.as_ref(), "connections").await;
    let bob = user(&r, "bob");
    store.create_user(&bob).await.expect("create");
    let now = now_ms();
    let conn = |user: &User, provider: &str, subject: &str, secret: &str| ProviderConnection {
        realm_id: r.id.clone(),
        user_id: user.id.clone(),
        provider: provider.to_string(),
        subject: subject.to_string(),
        secret: secret.to_string(),
        scopes: vec!["openid".into(), "email".into()],
        expires_at: Some(now + 3_600_000),
        created_at: now,
        updated_at: now,
    };
    store
        .put_provider_connection(&conn(&u, "acme", "sub-a", "one"))
        .await
        .expect("put");
    store
        .put_provider_connection(&conn(&u, "github", "42", "gh"))
        .await
        .expect("put");
    // Reconnecting replaces the tokens.
    let replaced = ProviderConnection {
        updated_at: now + 5,
        ..conn(&u, "acme", "sub-a", "two")
    };
    store.put_provider_connection(&replaced).await.expect("put");
    assert_eq!(
        store
            .provider_connection(&u.id, "acme")
            .await
            .expect("read"),
        Some(replaced.clone())
    );
    let refreshed = ProviderConnection {
        secret: "refreshed".into(),
        expires_at: Some(now + 7_200_000),
        updated_at: now + 6,
        ..replaced.clone()
    };
    assert!(store
        .update_provider_tokens(&refreshed)
        .await
        .expect("update"));
    assert_eq!(
        store
            .provider_connection(&u.id, "acme")
            .await
            .expect("read"),
        Some(refreshed.clone())
    );
    let replaced = refreshed;
    // Another user cannot take the same identity.
    assert!(matches!(
        store
            .put_provider_connection(&conn(&bob, "acme", "sub-a", "x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .provider_identity_user(&r.id, "acme", "sub-a")
            .await
            .expect("read"),
        Some(u.id.clone())
    );
    assert_eq!(
        store
            .provider_identity_user(&r.id, "acme", "sub-b")
            .await
            .expect("read"),
        None
    );
    let listed: Vec<String> = store
        .user_provider_connections(&u.id)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.provider)
        .collect();
    assert_eq!(listed, vec!["acme", "github"]);
    assert_eq!(
        store
            .delete_provider_connection(&u.id, "acme")
            .await
            .expect("delete"),
        Some(replaced)
    );
    assert_eq!(
        store
            .delete_provider_connection(&u.id, "acme")
            .await
            .expect("delete"),
        None
    );
    assert!(
        !store
            .update_provider_tokens(&conn(&u, "acme", "sub-a", "late"))
            .await
            .expect("update"),
        "a refresh never resurrects a disconnected connection"
    );
    assert_eq!(
        store
            .provider_connection(&u.id, "acme")
            .await
            .expect("read"),
        None
    );
    // Once disconnected, the identity is free for another user.
    store
        .put_provider_connection(&conn(&bob, "acme", "sub-a", "b"))
        .await
        .expect("put");
    store
        .delete_user(&r.id, &bob.id)
        .await
        .expect("delete user");
    assert!(store
        .user_provider_connections(&bob.id)
        .await
        .expect("list")
        .is_empty());
}
