//! Browser sign-in: SSO sessions, authorization codes, device codes.

use super::*;

pub(super) fn sso_session(realm: &Realm, user: &User, secret: &str, now: i64) -> SsoSession {
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

pub(super) fn auth_code(sso: &SsoSession, client: &Client, secret: &str, now: i64) -> AuthCode {
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

pub(super) fn device_code(
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
pub(super) fn session_for(
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
    assert_eq!(user.realm_id, r.id);
    assert_eq!(
        (user.user_id.as_str(), ended),
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
