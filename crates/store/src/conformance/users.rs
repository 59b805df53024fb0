//! Users: create, query, update, passwords, delete.

use super::*;

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
