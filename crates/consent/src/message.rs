//! The consent messages, byte for byte as Verida's Vault signs them.

use crate::did::{ContextName, Did};

/// `Authenticate this application context: "{context}"?\n\n{did}\n{authRequestId}`
pub fn authenticate_message(context: &ContextName, did: &Did, auth_request_id: &str) -> String {
    format!(
        "Authenticate this application context: \"{}\"?\n\n{}\n{}",
        context.as_str(),
        did.as_str(),
        auth_request_id
    )
}

/// `Invalidate device for this application context: "{context}"?\n\n{did}\n{deviceId}`
pub fn invalidate_device_message(context: &ContextName, did: &Did, device_id: &str) -> String {
    format!(
        "Invalidate device for this application context: \"{}\"?\n\n{}\n{}",
        context.as_str(),
        did.as_str(),
        device_id
    )
}

/// The stable per-(DID, context) database username: `v` + keccak256 of
/// `"{did}/{contextName}"` in hex (a letter first, as CouchDB requires). The
/// same wallet in the same context always maps to the same databases; another
/// context never sees them.
pub fn database_username(did: &Did, context: &ContextName) -> String {
    use sha3::{Digest, Keccak256};
    let digest = Keccak256::digest(format!("{}/{}", did.as_str(), context.as_str()).as_bytes());
    format!("v{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_usernames_are_per_did_and_context() {
        let did = Did::parse("did:ethr:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").expect("did");
        let same = Did::parse("did:ethr:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").expect("did");
        let a = ContextName::parse("App A").expect("ctx");
        let b = ContextName::parse("App B").expect("ctx");
        let name = database_username(&did, &a);
        assert_eq!(name, database_username(&same, &a), "casing does not matter");
        assert_ne!(name, database_username(&did, &b));
        assert!(name.starts_with('v') && name.len() == 65);
    }

    #[test]
    fn messages_match_the_seed_exactly() {
        let ctx = ContextName::parse("Verida: Vault").expect("ctx");
        let did =
            Did::parse("did:vda:testnet:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").expect("did");
        assert_eq!(
            authenticate_message(&ctx, &did, "abc123"),
            "Authenticate this application context: \"Verida: Vault\"?\n\ndid:vda:testnet:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\nabc123"
        );
        assert_eq!(
            invalidate_device_message(&ctx, &did, "dev-1"),
            "Invalidate device for this application context: \"Verida: Vault\"?\n\ndid:vda:testnet:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\ndev-1"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Reads (context, DID, id) back from a message with the given lead-in.
    fn fields<'m>(message: &'m str, lead: &str) -> Option<(&'m str, &'m str, &'m str)> {
        let rest = message.strip_prefix(lead)?.strip_prefix('"')?;
        let (context, rest) = rest.split_once("\"?\n\n")?;
        let (did, id) = rest.split_once('\n')?;
        Some((context, did, id))
    }

    proptest! {
        /// Build -> parse: a message names exactly the (context, DID, id)
        /// it was built from, so no context name or DID forges another.
        #[test]
        fn messages_read_back_their_fields(
            context in "[^\"\\p{Cc}]{1,30}",
            did in "did:(ethr|key|vda):[!-~]{1,40}",
            id in "\\PC{0,40}\n?\\PC{0,10}",
        ) {
            prop_assume!(!context.trim().is_empty());
            let context = ContextName::parse(&context).expect("valid name");
            let did = Did::parse(&did).expect("valid DID");
            let want = Some((context.as_str(), did.as_str(), id.as_str()));
            let auth = authenticate_message(&context, &did, &id);
            prop_assert_eq!(fields(&auth, "Authenticate this application context: "), want);
            let inval = invalidate_device_message(&context, &did, &id);
            prop_assert_eq!(
                fields(&inval, "Invalidate device for this application context: "),
                want
            );
        }
    }
}
