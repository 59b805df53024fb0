//! The consent messages a wallet signs, built from a context name, a DID and
//! a request or device id that arrive from the client.
//!
//! Asserts: nothing panics; a message names exactly one (context, DID, id)
//! triple: reading the fields back from the built message gives what went
//! in, so no context name or DID can forge another message's structure; the
//! two kinds of message never coincide; database usernames are `v` and 64
//! lower-case hex digits, and the same for every spelling of one DID.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_consent::{
    authenticate_message, database_username, invalidate_device_message, ContextName, Did,
};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    context: &'a str,
    did: &'a str,
    id: &'a str,
}

/// Reads (context, DID, id) back from a message with the given lead-in.
fn fields<'m>(message: &'m str, lead: &str) -> Option<(&'m str, &'m str, &'m str)> {
    let rest = message.strip_prefix(lead)?.strip_prefix('"')?;
    let (context, rest) = rest.split_once("\"?\n\n")?;
    let (did, id) = rest.split_once('\n')?;
    Some((context, did, id))
}

fuzz_target!(|input: Input| {
    let (Ok(context), Ok(did)) = (ContextName::parse(input.context), Did::parse(input.did)) else {
        return;
    };
    let auth = authenticate_message(&context, &did, input.id);
    let invalidate = invalidate_device_message(&context, &did, input.id);
    assert_ne!(auth, invalidate);
    let want = Some((context.as_str(), did.as_str(), input.id));
    assert_eq!(
        fields(&auth, "Authenticate this application context: "),
        want
    );
    assert_eq!(
        fields(
            &invalidate,
            "Invalidate device for this application context: "
        ),
        want
    );

    let name = database_username(&did, &context);
    assert_eq!(name.len(), 65);
    assert!(name.starts_with('v'));
    assert!(name[1..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let respelled = Did::parse(did.as_str()).expect("a normal form parses");
    assert_eq!(database_username(&respelled, &context), name);
});
