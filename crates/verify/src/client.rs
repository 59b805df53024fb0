//! Outgoing calls on the caller's behalf (Che's master-to-master
//! `HttpJsonRequestFactory`): every request carries the current subject's token.

use crate::Subject;

/// A `reqwest` client that signs each request with a subject's token.
#[derive(Clone, Default)]
pub struct SignedRequests {
    http: reqwest::Client,
}

impl SignedRequests {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// A request to `url` carrying `Authorization: Bearer <subject's token>`.
    pub fn request(
        &self,
        subject: &Subject,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(subject.token.expose())
    }

    pub fn get(&self, subject: &Subject, url: &str) -> reqwest::RequestBuilder {
        self.request(subject, reqwest::Method::GET, url)
    }

    pub fn post(&self, subject: &Subject, url: &str) -> reqwest::RequestBuilder {
        self.request(subject, reqwest::Method::POST, url)
    }
}
