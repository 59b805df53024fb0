//! The rule every self-service flow obeys (provider sign-up and linking by
//! email, DID consent users, anything that finds or creates an account from
//! outside): it never creates, links to or issues tokens for an account of
//! the admin realm, or an account holding an admin role. Administrators sign
//! in on purpose, with their own credentials; no flow that someone else can
//! start (a link, a signature, an upstream identity) reaches them.

use crate::provision::{ADMIN_ROLE, MASTER_REALM};
use tessera_core::{Realm, User};

/// Why a self-service flow may not act here; `None` when it may.
pub fn refusal(realm: &Realm, user: Option<&User>) -> Option<&'static str> {
    if realm.name == MASTER_REALM {
        return Some("Self-service sign-in is not available in the admin realm.");
    }
    if user.is_some_and(holds_admin_role) {
        // Says no more than that (not why), to whoever is in the browser.
        return Some(
            "This account cannot be signed in to this way. Sign in with its password instead.",
        );
    }
    None
}

/// Whether the user holds an admin role (the master realm's `admin`, or a
/// realm role of that name anywhere).
pub fn holds_admin_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ADMIN_ROLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn user(roles: &[&str]) -> User {
        User {
            id: "u".into(),
            realm_id: "r".into(),
            username: "alice".into(),
            email: None,
            email_verified: false,
            first_name: None,
            last_name: None,
            enabled: true,
            password_hash: None,
            password_temporary: false,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            attributes: BTreeMap::new(),
            created_at: 0,
        }
    }

    #[test]
    fn admin_realm_and_admin_accounts_are_refused() {
        let apps = Realm::new("apps", 0);
        let master = Realm::new(MASTER_REALM, 0);
        assert_eq!(refusal(&apps, None), None);
        assert_eq!(refusal(&apps, Some(&user(&["dev"]))), None);
        assert!(refusal(&master, None).is_some());
        assert!(refusal(&master, Some(&user(&[]))).is_some());
        assert!(refusal(&apps, Some(&user(&["dev", "admin"]))).is_some());
    }
}
