//! Realms: create, rename, delete (and everything in them).

use super::*;

pub async fn realms_crud(store: Arc<dyn Store>) {
    let mut r = realm("demo");
    r.attributes.insert(
        "tessera.resources".into(),
        "https://mcp.example/ \"quoted\" ü".into(),
    );
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
    r.attributes.clear();
    r.attributes.insert("frontendUrl".into(), String::new());
    r.attributes.insert("b".into(), "2".into());
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
