//! Token verification for resource servers, the way Che's filter chain does
//! it: a tower layer takes the bearer token (header, or `?token=` where a
//! route allows it), verifies it, and puts a typed [`Subject`] in the request
//! extensions; handlers extract it. Works against any issuer's JWKS over
//! HTTP, against keys a server holds itself, and — in agent mode — against a
//! machine-token public key given only through the environment.
//!
//! Architecture invariant: the verifying key decides the algorithm; `none`
//! and HMAC are never accepted, whatever the token header says.

mod agent;
mod client;
mod keysource;
mod layer;
mod resource;
mod subject;
mod verifier;

pub use agent::{AgentConfig, AgentError};
pub use client::SignedRequests;
pub use keysource::{JwksKeySource, KeySource, StaticKeys};
pub use layer::{Accept, Policy, Provision, VerifyLayer, VerifyService};
pub use resource::{BadResource, ProtectedResource, WELL_KNOWN};
pub use subject::{Subject, TokenKind};
pub use verifier::{
    verify_machine_signature, MachineTokens, Verifier, VerifyError, MACHINE_TOKEN_KIND,
};
