//! Consent challenges: spent once.

use super::*;

pub(super) fn challenge(realm: &Realm, id: &str, expires_at: i64) -> ConsentChallenge {
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
