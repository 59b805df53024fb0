//! Signing keys: one active per realm and purpose, rotation with overlap.

use super::*;

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
