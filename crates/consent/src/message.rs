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

#[cfg(test)]
mod tests {
    use super::*;

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
