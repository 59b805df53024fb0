//! Workspaces and their machine tokens.

use super::*;

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
