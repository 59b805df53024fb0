//! Clients: create, read, update, delete, unique client ids.

use super::*;

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
