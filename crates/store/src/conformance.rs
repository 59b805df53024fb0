//! The storage conformance suite (dex's habit): every backend runs exactly
//! these tests through `conformance_tests!`, so SQLite and PostgreSQL cannot
//! drift apart in behaviour.

use crate::{
    ClientMeta, DeviceDecision, Purged, Redeemed, RotateOutcome, Store, StoreError, UserQuery,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_core::model::KeyStatus;
use tessera_core::time::now_ms;
use tessera_core::{
    AuthCode, Client, ConsentChallenge, DeviceCode, DeviceStatus, MachineTokenRecord,
    ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session, SigningAlg,
    SigningKeyRecord, Signup, SsoSession, TokenHash, User, Workspace, WorkspaceStatus,
};

/// Generates one `#[tokio::test]` per conformance check. `$make` is an async
/// fn returning `Option<(Arc<dyn Store>, guard)>`; `None` means "backend not
/// configured here, skipped" (the constructor prints why).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            realms_crud, clients_crud, users_crud_and_query, sessions_and_revocation,
            refresh_rotation_and_reuse, concurrent_rotation_has_one_winner,
            rotation_of_revoked_or_expired_is_inactive, signing_key_rotation,
            deleting_a_realm_deletes_its_contents, purge_removes_only_expired,
            purge_works_in_batches, workspaces_and_machine_tokens,
            challenges_are_spent_once, device_sessions_revoke_together,
            touch_and_extending_rotation, sso_sessions_end_their_app_sessions,
            auth_codes_redeem_once, device_codes_poll_decide_redeem, purge_removes_codes_and_sso,
            sso_renewal_and_late_revocation, provider_states_are_taken_once,
            signups_complete_then_spend_once, provider_connections_and_identities,
            throttle_windows_are_shared, client_sessions_revoke_together);
    };
    (@each $make:path; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some((store, _guard)) = $make().await else { return };
            $crate::conformance::$name(store).await;
        }
    )*};
}

pub fn realm(name: &str) -> Realm {
    Realm::new(name, now_ms())
}

pub fn client(realm: &Realm, client_id: &str) -> Client {
    Client {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        client_id: client_id.to_string(),
        name: None,
        enabled: true,
        public_client: false,
        secret_hash: Some(TokenHash::of("s3cret")),
        secret_generation: 1,
        secret_generated: false,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        web_origins: vec![],
        standard_flow_enabled: true,
        direct_access_grants_enabled: true,
        service_accounts_enabled: false,
        attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
        created_at: now_ms(),
    }
}

pub fn user(realm: &Realm, username: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        username: username.to_string(),
        email: Some(format!("{username}@example.test")),
        email_verified: false,
        first_name: Some("First".into()),
        last_name: Some(format!("Last{username}")),
        enabled: true,
        password_hash: Some("$argon2id$fake".into()),
        password_temporary: false,
        roles: vec!["user".into()],
        attributes: BTreeMap::from([("team".to_string(), vec!["a".to_string()])]),
        created_at: now_ms(),
    }
}

pub fn session(realm: &Realm, user: &User, client: &Client, now: i64) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        client_id: client.id.clone(),
        device_id: Some("laptop".into()),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        context_name: None,
        origin: None,
        sso_session_id: None,
        scope: "email profile".into(),
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now + 3_600_000,
        revoked_at: None,
    }
}

pub fn refresh(session: &Session, secret: &str, now: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: TokenHash::of(secret),
        session_id: session.id.clone(),
        created_at: now,
        expires_at: session.expires_at,
        rotated_at: None,
    }
}

fn key(realm: &Realm, kid: &str, status: KeyStatus) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_string(),
        realm_id: realm.id.clone(),
        alg: SigningAlg::RS256,
        purpose: "realm".into(),
        status,
        sealed_private_key: vec![1, 2, 3],
        public_key_der: vec![4, 5, 6],
        created_at: now_ms(),
        visible_until: None,
    }
}

/// A realm with one client and one user, for tests that need the basics.
async fn fixture(store: &dyn Store, name: &str) -> (Realm, Client, User) {
    let r = realm(name);
    store.create_realm(&r).await.expect("create realm");
    let c = client(&r, "app");
    store.create_client(&c).await.expect("create client");
    let u = user(&r, "alice");
    store.create_user(&u).await.expect("create user");
    (r, c, u)
}

pub async fn realms_crud(store: Arc<dyn Store>) {
    let mut r = realm("demo");
    store.create_realm(&r).await.expect("create");
    assert!(matches!(
        store.create_realm(&realm("demo")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.realm_by_name("demo").await.expect("get"),
        Some(r.clone())
    );
    assert_eq!(store.realm_by_name("nope").await.expect("get"), None);
    r.display_name = Some("Demo".into());
    r.signing_alg = SigningAlg::ES256;
    r.access_token_lifespan_secs = 60;
    store.update_realm(&r).await.expect("update");
    assert_eq!(
        store.realm_by_name("demo").await.expect("get"),
        Some(r.clone())
    );
    store.create_realm(&realm("other")).await.expect("create");
    let mut renamed = r.clone();
    renamed.name = "other".into();
    assert!(matches!(
        store.update_realm(&renamed).await,
        Err(StoreError::Conflict(_))
    ));
    let names: Vec<String> = store
        .list_realms()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["demo".to_string(), "other".to_string()]);
    store.delete_realm(&r.id).await.expect("delete");
    assert_eq!(store.realm_by_name("demo").await.expect("get"), None);
    assert!(matches!(
        store.update_realm(&r).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn clients_crud(store: Arc<dyn Store>) {
    let r = realm("r");
    store.create_realm(&r).await.expect("realm");
    let mut c = client(&r, "app");
    store.create_client(&c).await.expect("create");
    assert!(matches!(
        store.create_client(&client(&r, "app")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.client(&r.id, &c.id).await.expect("get"),
        Some(c.clone())
    );
    assert_eq!(
        store.client_by_client_id(&r.id, "app").await.expect("get"),
        Some(c.clone())
    );
    c.public_client = true;
    c.secret_hash = None;
    c.redirect_uris = vec!["https://a/cb".into(), "https://b/cb".into()];
    c.attributes.insert(
        "oauth2.device.authorization.grant.enabled".into(),
        "true".into(),
    );
    store.update_client(&c).await.expect("update");
    assert_eq!(
        store.client(&r.id, &c.id).await.expect("get"),
        Some(c.clone())
    );
    store
        .create_client(&client(&r, "another"))
        .await
        .expect("create");
    assert_eq!(store.list_clients(&r.id).await.expect("list").len(), 2);
    // Same clientId in another realm is fine.
    let r2 = realm("r2");
    store.create_realm(&r2).await.expect("realm");
    store
        .create_client(&client(&r2, "app"))
        .await
        .expect("other realm");
    assert_eq!(
        store.client(&r2.id, &c.id).await.expect("get"),
        None,
        "ids are realm-scoped"
    );
    store.delete_client(&r.id, &c.id).await.expect("delete");
    assert_eq!(store.client(&r.id, &c.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_client(&r.id, &c.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn users_crud_and_query(store: Arc<dyn Store>) {
    let r = realm("r");
    store.create_realm(&r).await.expect("realm");
    let mut alice = user(&r, "alice");
    store.create_user(&alice).await.expect("create");
    assert!(matches!(
        store.create_user(&user(&r, "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    for name in ["bob", "alicia", "carol"] {
        store.create_user(&user(&r, name)).await.expect("create");
    }
    assert_eq!(
        store.user(&r.id, &alice.id).await.expect("get"),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username(&r.id, "alice").await.expect("get"),
        Some(alice.clone())
    );
    assert_eq!(store.count_users(&r.id).await.expect("count"), 4);

    let names = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    let q = |f: fn(&mut UserQuery)| {
        let mut q = UserQuery {
            max: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = store.list_users(&r.id, &q(|_| {})).await.expect("list");
    assert_eq!(names(all), vec!["alice", "alicia", "bob", "carol"]);
    let exact = store
        .list_users(
            &r.id,
            &q(|q| {
                q.username = Some("alice".into());
                q.exact = true;
            }),
        )
        .await
        .expect("exact");
    assert_eq!(names(exact), vec!["alice"]);
    let sub = store
        .list_users(&r.id, &q(|q| q.username = Some("ali".into())))
        .await
        .expect("substring");
    assert_eq!(names(sub), vec!["alice", "alicia"]);
    let search = store
        .list_users(&r.id, &q(|q| q.search = Some("LASTBOB".into())))
        .await
        .expect("search");
    assert_eq!(names(search), vec!["bob"]);
    let email = store
        .list_users(&r.id, &q(|q| q.email = Some("carol@example.test".into())))
        .await
        .expect("email");
    assert_eq!(names(email), vec!["carol"]);
    let page = store
        .list_users(
            &r.id,
            &q(|q| {
                q.first = 1;
                q.max = 2;
            }),
        )
        .await
        .expect("page");
    assert_eq!(names(page), vec!["alicia", "bob"]);
    // LIKE wildcards in the search text are literal.
    let wild = store
        .list_users(&r.id, &q(|q| q.search = Some("%".into())))
        .await
        .expect("wild");
    assert!(wild.is_empty());

    alice.email = None;
    alice.enabled = false;
    alice.password_hash = Some("$argon2id$other".into());
    alice.password_temporary = true;
    alice.roles = vec!["admin".into(), "user".into()];
    store.update_user(&alice).await.expect("update");
    assert_eq!(
        store.user(&r.id, &alice.id).await.expect("get"),
        Some(alice.clone())
    );
    store.delete_user(&r.id, &alice.id).await.expect("delete");
    assert_eq!(store.user(&r.id, &alice.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_user(&r.id, &alice.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_user(&alice).await,
        Err(StoreError::NotFound)
    ));
}

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
        Some(u.id.clone())
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

pub async fn signing_key_rotation(store: Arc<dyn Store>) {
    let r = realm("r");
    store.create_realm(&r).await.expect("realm");
    let k1 = key(&r, "k1", KeyStatus::Active);
    store.insert_key(&k1).await.expect("insert");
    assert!(matches!(
        store.insert_key(&k1).await,
        Err(StoreError::Conflict(_))
    ));
    let mut k2 = key(&r, "k2", KeyStatus::Active);
    k2.created_at = k1.created_at + 1;
    store.rotate_keys(&k2, 12345).await.expect("rotate");
    let keys = store.keys(&r.id, "realm").await.expect("list");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "k2");
    assert_eq!(keys[0].status, KeyStatus::Active);
    assert_eq!(keys[0].sealed_private_key, vec![1, 2, 3]);
    assert_eq!(keys[1].kid, "k1");
    assert_eq!(keys[1].status, KeyStatus::Retiring);
    assert_eq!(keys[1].visible_until, Some(12345));
    assert!(store
        .keys(&r.id, "machine")
        .await
        .expect("other purpose")
        .is_empty());
    store
        .set_key_status("k1", KeyStatus::Retiring, Some(1))
        .await
        .expect("status");
    assert_eq!(
        store.keys(&r.id, "realm").await.expect("list")[1].visible_until,
        Some(1)
    );
}

pub async fn deleting_a_realm_deletes_its_contents(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "gone").await;
    let now = now_ms();
    let s = session(&r, &u, &c, now);
    store
        .create_session(&s, &refresh(&s, "tok", now))
        .await
        .expect("session");
    store
        .insert_key(&key(&r, "kk", KeyStatus::Active))
        .await
        .expect("key");
    store.delete_realm(&r.id).await.expect("delete");
    assert_eq!(store.client(&r.id, &c.id).await.expect("client"), None);
    assert_eq!(store.user(&r.id, &u.id).await.expect("user"), None);
    assert_eq!(store.session(&s.id).await.expect("session"), None);
    assert_eq!(
        store
            .refresh_token(&TokenHash::of("tok"))
            .await
            .expect("token"),
        None
    );
    assert!(store.keys(&r.id, "realm").await.expect("keys").is_empty());
}

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

pub async fn workspaces_and_machine_tokens(store: Arc<dyn Store>) {
    let (r, _, alice) = fixture(store.as_ref(), "r").await;
    let bob = user(&r, "bob");
    store.create_user(&bob).await.expect("bob");
    let now = now_ms();
    let ws = Workspace {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: r.id.clone(),
        owner_id: alice.id.clone(),
        namespace: "alice".into(),
        name: "dev".into(),
        status: WorkspaceStatus::Stopped,
        created_at: now,
        updated_at: now,
    };
    store.create_workspace(&ws).await.expect("create");
    let mut dup = ws.clone();
    dup.id = uuid::Uuid::new_v4().to_string();
    assert!(matches!(
        store.create_workspace(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.workspace(&r.id, &ws.id).await.expect("get"),
        Some(ws.clone())
    );
    assert_eq!(
        store
            .workspace_by_name(&r.id, "alice", "dev")
            .await
            .expect("by name"),
        Some(ws.clone())
    );
    assert_eq!(
        store
            .workspace("other-realm", &ws.id)
            .await
            .expect("scoped"),
        None
    );
    assert!(store
        .user_workspaces(&r.id, &bob.id)
        .await
        .expect("bob's")
        .is_empty());
    store
        .add_workspace_member(&ws.id, &bob.id)
        .await
        .expect("invite");
    store
        .add_workspace_member(&ws.id, &bob.id)
        .await
        .expect("idempotent");
    assert!(store
        .is_workspace_member(&ws.id, &bob.id)
        .await
        .expect("member"));
    assert!(!store
        .is_workspace_member(&ws.id, &alice.id)
        .await
        .expect("owner is not a member row"));
    assert_eq!(
        store
            .user_workspaces(&r.id, &bob.id)
            .await
            .expect("bob's")
            .len(),
        1
    );
    assert_eq!(
        store
            .user_workspaces(&r.id, &alice.id)
            .await
            .expect("alice's")
            .len(),
        1
    );

    store
        .set_workspace_status(&ws.id, WorkspaceStatus::Running, now + 1)
        .await
        .expect("start");
    let token = |user: &User, jti: &str| MachineTokenRecord {
        jti: jti.to_string(),
        workspace_id: ws.id.clone(),
        user_id: user.id.clone(),
        created_at: now + 2,
        revoked_at: None,
    };
    store
        .insert_machine_token(&token(&alice, "j1"))
        .await
        .expect("alice's token");
    assert!(
        matches!(
            store.insert_machine_token(&token(&alice, "j2")).await,
            Err(StoreError::Conflict(_))
        ),
        "one live token per user"
    );
    store
        .insert_machine_token(&token(&bob, "j3"))
        .await
        .expect("bob's token");
    assert_eq!(
        store
            .live_machine_token(&ws.id, &alice.id)
            .await
            .expect("live")
            .map(|t| t.jti),
        Some("j1".into())
    );
    store
        .set_workspace_status(&ws.id, WorkspaceStatus::Stopped, now + 3)
        .await
        .expect("stop");
    assert_eq!(
        store
            .live_machine_token(&ws.id, &alice.id)
            .await
            .expect("live"),
        None,
        "stopping revokes"
    );
    assert_eq!(
        store
            .machine_token("j3")
            .await
            .expect("get")
            .and_then(|t| t.revoked_at),
        Some(now + 3)
    );
    // A token a request raced in while the workspace was stopped...
    store
        .insert_machine_token(&token(&bob, "late"))
        .await
        .expect("late insert");
    store
        .set_workspace_status(&ws.id, WorkspaceStatus::Running, now + 4)
        .await
        .expect("restart");
    // ...does not survive the restart.
    assert_eq!(
        store
            .machine_token("late")
            .await
            .expect("get")
            .and_then(|t| t.revoked_at),
        Some(now + 4)
    );
    store
        .insert_machine_token(&token(&alice, "j4"))
        .await
        .expect("new token after restart");
    assert_eq!(
        store
            .workspace(&r.id, &ws.id)
            .await
            .expect("get")
            .map(|w| w.status),
        Some(WorkspaceStatus::Running)
    );
    assert!(
        matches!(
            store.delete_workspace(&r.id, &ws.id).await,
            Err(StoreError::NotFound)
        ),
        "a running workspace is not deleted"
    );
    store
        .set_workspace_status(&ws.id, WorkspaceStatus::Stopped, now + 5)
        .await
        .expect("stop");
    store.delete_workspace(&r.id, &ws.id).await.expect("delete");
    assert_eq!(
        store.machine_token("j4").await.expect("get"),
        None,
        "tokens go with the workspace"
    );
    assert_eq!(store.workspace(&r.id, &ws.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_workspace(&r.id, &ws.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_workspace_status(&ws.id, WorkspaceStatus::Running, now)
            .await,
        Err(StoreError::NotFound)
    ));
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

fn challenge(realm: &Realm, id: &str, expires_at: i64) -> ConsentChallenge {
    ConsentChallenge {
        hash: TokenHash::of(id),
        realm_id: realm.id.clone(),
        did: format!("did:ethr:0x{id}"),
        context_name: "Verida: Test".into(),
        created_at: expires_at - 60_000,
        expires_at,
    }
}

pub async fn challenges_are_spent_once(store: Arc<dyn Store>) {
    let (r, _, _) = fixture(store.as_ref(), "r").await;
    let now = now_ms();
    let c = challenge(&r, "abc", now + 60_000);
    // Many concurrent spenders, one winner.
    let spenders: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let c = c.clone();
            tokio::spawn(async move { store.spend_challenge(&c).await })
        })
        .collect();
    let mut won = 0;
    for t in spenders {
        if t.await.expect("join").expect("spend") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert!(!store.spend_challenge(&c).await.expect("again"));
    assert!(store
        .spend_challenge(&challenge(&r, "other", now + 60_000))
        .await
        .expect("another"));
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

fn sso_session(realm: &Realm, user: &User, secret: &str, now: i64) -> SsoSession {
    SsoSession {
        id: uuid::Uuid::new_v4().to_string(),
        realm_id: realm.id.clone(),
        user_id: user.id.clone(),
        secret_hash: TokenHash::of(secret),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("browser".into()),
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now + 3_600_000,
        revoked_at: None,
    }
}

fn auth_code(sso: &SsoSession, client: &Client, secret: &str, now: i64) -> AuthCode {
    AuthCode {
        hash: TokenHash::of(secret),
        realm_id: sso.realm_id.clone(),
        client_id: client.id.clone(),
        user_id: sso.user_id.clone(),
        sso_session_id: sso.id.clone(),
        session_id: uuid::Uuid::new_v4().to_string(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        scope: "openid".into(),
        nonce: Some("n".into()),
        code_challenge: Some("c".into()),
        auth_time: now,
        created_at: now,
        expires_at: now + 60_000,
        spent_at: None,
    }
}

fn device_code(
    realm: &Realm,
    client: &Client,
    secret: &str,
    user_code: &str,
    now: i64,
) -> DeviceCode {
    DeviceCode {
        hash: TokenHash::of(secret),
        user_code: user_code.to_string(),
        realm_id: realm.id.clone(),
        client_id: client.id.clone(),
        scope: "openid".into(),
        session_id: uuid::Uuid::new_v4().to_string(),
        status: DeviceStatus::Pending,
        user_id: None,
        sso_session_id: None,
        auth_time: None,
        interval_secs: 5,
        last_polled_at: None,
        created_at: now,
        expires_at: now + 600_000,
        spent_at: None,
    }
}

/// The app session a code or device code creates when redeemed.
fn session_for(
    realm: &Realm,
    user: &User,
    client: &Client,
    id: &str,
    sso: &str,
    now: i64,
) -> Session {
    let mut s = session(realm, user, client, now);
    s.id = id.to_string();
    s.sso_session_id = Some(sso.to_string());
    s
}

pub async fn sso_sessions_end_their_app_sessions(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "sso").await;
    let now = now_ms();
    let sso = sso_session(&r, &u, "cookie", now);
    store.create_sso_session(&sso).await.expect("create sso");
    let touched = store
        .touch_sso_session(&TokenHash::of("cookie"), now + 5)
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(
        (touched.id.as_str(), touched.last_used_at),
        (sso.id.as_str(), now + 5)
    );
    assert!(store
        .touch_sso_session(&TokenHash::of("other"), now)
        .await
        .expect("touch")
        .is_none());
    // Two app sessions from this browser, one password session elsewhere.
    let a = session_for(&r, &u, &c, "app-a", &sso.id, now);
    let b = session_for(&r, &u, &c, "app-b", &sso.id, now);
    let other = session(&r, &u, &c, now);
    for (s, t) in [(&a, "ta"), (&b, "tb"), (&other, "to")] {
        store
            .create_session(s, &refresh(s, t, now))
            .await
            .expect("create session");
    }
    assert_eq!(
        store
            .session("app-a")
            .await
            .expect("read")
            .and_then(|s| s.sso_session_id),
        Some(sso.id.clone())
    );
    let listed = store
        .user_sso_sessions(&r.id, &u.id, now)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let (user, mut ended) = store
        .revoke_sso_session(&sso.id, now + 10)
        .await
        .expect("revoke")
        .expect("was live");
    ended.sort();
    assert_eq!(
        (user.as_str(), ended),
        (
            u.id.as_str(),
            vec!["app-a".to_string(), "app-b".to_string()]
        )
    );
    // Revoking again finds the session but nothing left to end.
    let (_, again) = store
        .revoke_sso_session(&sso.id, now + 11)
        .await
        .expect("again")
        .expect("exists");
    assert!(again.is_empty());
    assert!(store
        .touch_sso_session(&TokenHash::of("cookie"), now + 12)
        .await
        .expect("touch")
        .is_none());
    let alive = store
        .user_sessions(&r.id, &u.id, now + 12)
        .await
        .expect("list");
    assert_eq!(
        alive.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![other.id.clone()]
    );
    // Signing the user out everywhere also ends their browser sessions.
    let sso2 = sso_session(&r, &u, "cookie2", now);
    store.create_sso_session(&sso2).await.expect("create sso");
    let ended = store
        .revoke_user_sessions(&r.id, &u.id, now + 20)
        .await
        .expect("revoke all");
    assert_eq!(ended, vec![other.id.clone()]);
    assert!(store
        .touch_sso_session(&TokenHash::of("cookie2"), now + 21)
        .await
        .expect("touch")
        .is_none());
}

pub async fn sso_renewal_and_late_revocation(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "sso-late").await;
    let now = now_ms();
    let sso = sso_session(&r, &u, "first", now);
    store.create_sso_session(&sso).await.expect("create");
    // Renewal: a new secret, auth time and expiry; the old secret is dead.
    let renewed = store
        .renew_sso_session(&sso.id, &TokenHash::of("second"), now + 50, now + 7_200_000)
        .await
        .expect("renew")
        .expect("live");
    assert_eq!(
        (renewed.auth_time, renewed.expires_at),
        (now + 50, now + 7_200_000)
    );
    assert!(store
        .touch_sso_session(&TokenHash::of("first"), now + 60)
        .await
        .expect("touch")
        .is_none());
    assert!(store
        .touch_sso_session(&TokenHash::of("second"), now + 60)
        .await
        .expect("touch")
        .is_some());
    // An expired SSO session still takes its app sessions with it.
    let mut old = sso_session(&r, &u, "old", now - 7_200_000);
    old.expires_at = now - 1;
    store.create_sso_session(&old).await.expect("create");
    let app = session_for(&r, &u, &c, "late-app", &old.id, now);
    store
        .create_session(&app, &refresh(&app, "late", now))
        .await
        .expect("session");
    assert!(store
        .renew_sso_session(&old.id, &TokenHash::of("x"), now, now + 1)
        .await
        .expect("renew")
        .is_none());
    let (_, ended) = store
        .revoke_sso_session(&old.id, now)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(ended, vec!["late-app".to_string()]);
    assert!(store
        .revoke_sso_session("no-such-sso", now)
        .await
        .expect("revoke")
        .is_none());
    // Redeeming a code of a revoked browser session creates nothing.
    let code = auth_code(&old, &c, "late-code", now);
    store.insert_auth_code(&code).await.expect("insert");
    let s = session_for(&r, &u, &c, &code.session_id, &old.id, now);
    assert_eq!(
        store
            .redeem_auth_code(&code.hash, now, &s, &refresh(&s, "late-rt", now))
            .await
            .expect("redeem"),
        Redeemed::Gone
    );
    assert!(store
        .session(&code.session_id)
        .await
        .expect("read")
        .is_none());
    // Signing the user out everywhere denies devices approved but not yet redeemed.
    let d = device_code(&r, &c, "late-dev", "FFFFFFFF", now);
    store.insert_device_code(&d).await.expect("insert");
    let decision = DeviceDecision {
        approve: true,
        user_id: u.id.clone(),
        sso_session_id: sso.id.clone(),
        auth_time: now,
    };
    assert!(store
        .decide_device_code(&r.id, "FFFFFFFF", &decision, now)
        .await
        .expect("decide"));
    store
        .revoke_user_sessions(&r.id, &u.id, now)
        .await
        .expect("revoke all");
    let after = store
        .device_code(&d.hash)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(after.status, DeviceStatus::Denied);
}

pub async fn auth_codes_redeem_once(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "codes").await;
    let now = now_ms();
    let sso = sso_session(&r, &u, "cookie", now);
    store.create_sso_session(&sso).await.expect("create sso");
    let code = auth_code(&sso, &c, "code1", now);
    store.insert_auth_code(&code).await.expect("insert");
    assert_eq!(
        store.auth_code(&code.hash).await.expect("read"),
        Some(code.clone())
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let s = session_for(&r, &u, &c, &code.session_id, &sso.id, now);
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            let first = refresh(&s, &format!("rt{i}"), now);
            store
                .redeem_auth_code(&code.hash, now + 1, &s, &first)
                .await
                .expect("redeem")
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("join") {
            Redeemed::Created => created += 1,
            Redeemed::AlreadySpent { session_id } => assert_eq!(session_id, code.session_id),
            Redeemed::Gone => panic!("the code exists"),
        }
    }
    assert_eq!(created, 1);
    assert!(store
        .session(&code.session_id)
        .await
        .expect("read")
        .is_some());
    assert!(store
        .auth_code(&code.hash)
        .await
        .expect("read")
        .and_then(|c| c.spent_at)
        .is_some());
    let s = session_for(&r, &u, &c, "x", &sso.id, now);
    assert_eq!(
        store
            .redeem_auth_code(&TokenHash::of("nope"), now, &s, &refresh(&s, "x", now))
            .await
            .expect("redeem"),
        Redeemed::Gone
    );
}

pub async fn device_codes_poll_decide_redeem(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "device").await;
    let now = now_ms();
    let d = device_code(&r, &c, "dev1", "BCDFGHJK", now);
    store.insert_device_code(&d).await.expect("insert");
    let clash = device_code(&r, &c, "dev2", "BCDFGHJK", now);
    assert!(matches!(
        store.insert_device_code(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .device_code_by_user_code(&r.id, "BCDFGHJK")
            .await
            .expect("read"),
        Some(d.clone())
    );
    // Polls: the first is on time, one 1 s later is too fast and adds 5 s.
    assert!(store.record_device_poll(&d.hash, now).await.expect("poll"));
    assert!(!store
        .record_device_poll(&d.hash, now + 1_000)
        .await
        .expect("poll"));
    let polled = store
        .device_code(&d.hash)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (polled.interval_secs, polled.last_polled_at),
        (10, Some(now + 1_000))
    );
    assert!(!store
        .record_device_poll(&d.hash, now + 6_000)
        .await
        .expect("poll"));
    assert!(store
        .record_device_poll(&d.hash, now + 22_000)
        .await
        .expect("poll"));
    // Redeeming before approval finds nothing to redeem.
    let s = session_for(&r, &u, &c, &d.session_id, "sso", now);
    assert_eq!(
        store
            .redeem_device_code(&d.hash, now, &s, &refresh(&s, "r0", now))
            .await
            .expect("redeem"),
        Redeemed::Gone
    );
    let decision = DeviceDecision {
        approve: true,
        user_id: u.id.clone(),
        sso_session_id: "sso".into(),
        auth_time: now,
    };
    assert!(store
        .decide_device_code(&r.id, "BCDFGHJK", &decision, now)
        .await
        .expect("decide"));
    let deny = DeviceDecision {
        approve: false,
        ..decision.clone()
    };
    assert!(!store
        .decide_device_code(&r.id, "BCDFGHJK", &deny, now)
        .await
        .expect("decide twice"));
    let approved = store
        .device_code(&d.hash)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (approved.status, approved.user_id.as_deref()),
        (DeviceStatus::Approved, Some(u.id.as_str()))
    );
    assert_eq!(
        store
            .redeem_device_code(&d.hash, now, &s, &refresh(&s, "r1", now))
            .await
            .expect("redeem"),
        Redeemed::Created
    );
    assert_eq!(
        store
            .redeem_device_code(&d.hash, now, &s, &refresh(&s, "r2", now))
            .await
            .expect("redeem"),
        Redeemed::AlreadySpent {
            session_id: d.session_id.clone()
        }
    );
    // An expired code cannot be decided; a denied one is never redeemed.
    let mut old = device_code(&r, &c, "dev3", "LMNPQRST", now - 700_000);
    old.expires_at = now - 100_000;
    store.insert_device_code(&old).await.expect("insert");
    assert!(!store
        .decide_device_code(&r.id, "LMNPQRST", &decision, now)
        .await
        .expect("decide"));
    let denied = device_code(&r, &c, "dev4", "VWXZBCDF", now);
    store.insert_device_code(&denied).await.expect("insert");
    assert!(store
        .decide_device_code(&r.id, "VWXZBCDF", &deny, now)
        .await
        .expect("deny"));
    let s4 = session_for(&r, &u, &c, &denied.session_id, "sso", now);
    assert_eq!(
        store
            .redeem_device_code(&denied.hash, now, &s4, &refresh(&s4, "r4", now))
            .await
            .expect("redeem"),
        Redeemed::Gone
    );
}

pub async fn purge_removes_codes_and_sso(store: Arc<dyn Store>) {
    let (r, c, u) = fixture(store.as_ref(), "purge-browser").await;
    let now = now_ms();
    let mut dead = sso_session(&r, &u, "dead", now - 7_200_000);
    dead.expires_at = now - 1;
    let live = sso_session(&r, &u, "live", now);
    store.create_sso_session(&dead).await.expect("create");
    store.create_sso_session(&live).await.expect("create");
    let mut old_code = auth_code(&live, &c, "old", now - 900_000);
    old_code.expires_at = now - 840_000;
    let mut recent = auth_code(&live, &c, "recent", now - 90_000);
    recent.expires_at = now - 30_000;
    store.insert_auth_code(&old_code).await.expect("insert");
    store.insert_auth_code(&recent).await.expect("insert");
    // Device codes stay 10 minutes past expiry (late polls hear `expired_token`).
    let mut old_device = device_code(&r, &c, "d-old", "BBBBBBBB", now - 1_400_000);
    old_device.expires_at = now - 700_000;
    let mut late = device_code(&r, &c, "d-late", "DDDDDDDD", now - 700_000);
    late.expires_at = now - 1;
    store.insert_device_code(&late).await.expect("insert");
    store.insert_device_code(&old_device).await.expect("insert");
    store
        .insert_device_code(&device_code(&r, &c, "d-new", "CCCCCCCC", now))
        .await
        .expect("insert");
    let done = store.purge_expired(now, 100).await.expect("purge");
    assert_eq!((done.codes, done.sso_sessions), (2, 1));
    assert!(store
        .auth_code(&old_code.hash)
        .await
        .expect("read")
        .is_none());
    // A code expired less than 10 minutes ago stays, so a replay is recognised.
    assert!(store.auth_code(&recent.hash).await.expect("read").is_some());
    assert!(store.sso_session(&dead.id).await.expect("read").is_none());
    assert!(store.sso_session(&live.id).await.expect("read").is_some());
    assert!(store
        .device_code(&TokenHash::of("d-new"))
        .await
        .expect("read")
        .is_some());
    assert!(store
        .device_code(&TokenHash::of("d-late"))
        .await
        .expect("read")
        .is_some());
}

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
