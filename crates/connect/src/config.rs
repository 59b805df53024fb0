//! What the operator declares: this deployment's environment name, the other
//! environments, and the upstream providers. Presets fill in GitHub's and
//! GitLab's endpoints; secrets are read from an environment variable or a
//! file when the service starts and never appear in `Debug` output or logs.

use oauth2::ClientSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use url::Url;

/// One `[providers.NAME]` table of the config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Shown on pages ("Connect to GitHub"); defaults to the table name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `oidc`: the issuer, whose discovery document names every endpoint.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `github`/`gitlab`: a self-hosted instance instead of the public one.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
    /// RFC 7009 revocation, used when a user disconnects.
    #[serde(default)]
    pub revocation_url: Option<String>,
    pub client_id: String,
    /// Name of the environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret (trailing newline ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// PKCE S256 (default on; turn off for providers that reject it).
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Keycloak's "Trust Email": a sign-up may find an existing account by
    /// an email this provider says is verified. Off by default: an upstream
    /// `email_verified` claim alone links nothing.
    #[serde(default)]
    pub trust_email: bool,
    /// Userinfo member holding the user's id at the provider.
    #[serde(default)]
    pub subject_field: Option<String>,
    #[serde(default)]
    pub email_field: Option<String>,
    /// Userinfo member saying the email is verified; without one, emails
    /// from `oauth2` providers count as unverified.
    #[serde(default)]
    pub email_verified_field: Option<String>,
    #[serde(default)]
    pub name_field: Option<String>,
    #[serde(default)]
    pub username_field: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Oauth2,
    Github,
    Gitlab,
}

/// Everything the connect machinery needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct ConnectConfig {
    /// This deployment's name, carried in every state it signs.
    pub runtime_environment: String,
    /// Base of callback URLs when set (else the public URL).
    pub auth_origin: Option<String>,
    /// Other deployments by name: callbacks and relayed requests for them
    /// are sent there, and nowhere else.
    pub environments: BTreeMap<String, String>,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Where a browser lands after connecting (default: Tessera's page).
    pub success_url: Option<String>,
    /// Origins Che's `redirect_after_login` may point to, besides Tessera's own.
    pub redirect_origins: Vec<String>,
    /// Realm of sign-ups and of the Che API.
    pub default_realm: String,
    /// Largest relayed request body, in bytes.
    pub relay_max_bytes: usize,
}

/// The endpoints and claims mapping of a provider after presets.
#[derive(Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    /// As configured: OIDC compares it with the discovery document's verbatim.
    pub issuer: Option<String>,
    pub authorize_url: Option<Url>,
    pub token_url: Option<Url>,
    pub userinfo_url: Option<Url>,
    pub revocation_url: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub scopes: Vec<String>,
    pub pkce: bool,
    pub trust_email: bool,
    pub fields: Fields,
}

/// Which userinfo members hold what.
#[derive(Clone, Debug)]
pub struct Fields {
    pub subject: String,
    pub email: String,
    pub email_verified: Option<String>,
    pub name: String,
    pub username: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("provider {0}: {1}")]
    Provider(String, String),
    #[error("{0}")]
    Invalid(String),
}

fn http_url(what: &str, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{what} {raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{what} must be an http(s) URL"));
    }
    Ok(url)
}

/// The scheme, host and port of an http(s) URL.
pub fn origin_of(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Environment names are path segments and JSON strings: keep them plain.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl ConnectConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| ConfigError::Invalid(m);
        if !valid_name(&self.runtime_environment) {
            return Err(bad(
                "runtime_environment must be 1-64 letters, digits, '-' or '_'".into(),
            ));
        }
        if let Some(origin) = &self.auth_origin {
            http_url("auth_origin", origin).map_err(bad)?;
        }
        for (name, url) in &self.environments {
            if !valid_name(name) {
                return Err(bad(format!(
                    "environment name {name:?} must be letters, digits, '-' or '_'"
                )));
            }
            if name == &self.runtime_environment {
                return Err(bad(format!(
                    "environments.{name} names this deployment itself"
                )));
            }
            http_url(&format!("environments.{name}"), url).map_err(bad)?;
        }
        if let Some(url) = &self.success_url {
            http_url("connect_success_url", url).map_err(bad)?;
        }
        for origin in &self.redirect_origins {
            if origin_of(origin).as_deref() != Some(origin.trim_end_matches('/')) {
                return Err(bad(format!(
                    "oauth_redirect_origins entry {origin:?} must be an origin like https://ide.example"
                )));
            }
        }
        for name in self.providers.keys() {
            if !valid_name(name) {
                return Err(bad(format!(
                    "provider name {name:?} must be letters, digits, '-' or '_'"
                )));
            }
        }
        Ok(())
    }
}

impl ProviderConfig {
    /// Applies presets, checks the URLs and reads the client secret.
    pub fn resolve(
        &self,
        name: &str,
        read_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProviderSpec, ConfigError> {
        let fail = |m: String| ConfigError::Provider(name.to_string(), m);
        let url = |what: &str, v: &Option<String>| -> Result<Option<Url>, ConfigError> {
            v.as_deref()
                .map(|raw| http_url(what, raw))
                .transpose()
                .map_err(fail)
        };
        let mut spec = ProviderSpec {
            name: name.to_string(),
            display_name: self
                .display_name
                .clone()
                .unwrap_or_else(|| name.to_string()),
            kind: self.kind,
            issuer: {
                url("issuer", &self.issuer)?;
                self.issuer.clone()
            },
            authorize_url: url("authorize_url", &self.authorize_url)?,
            token_url: url("token_url", &self.token_url)?,
            userinfo_url: url("userinfo_url", &self.userinfo_url)?,
            revocation_url: url("revocation_url", &self.revocation_url)?,
            client_id: self.client_id.clone(),
            trust_email: self.trust_email,
            client_secret: self.client_secret(name, read_env)?,
            scopes: Vec::new(),
            pkce: self.pkce.unwrap_or(true),
            fields: Fields {
                subject: "sub".into(),
                email: "email".into(),
                email_verified: None,
                name: "name".into(),
                username: "preferred_username".into(),
            },
        };
        if self.client_id.trim().is_empty() {
            return Err(fail("client_id is required".into()));
        }
        let default_scopes: &[&str] = match self.kind {
            ProviderKind::Oidc => {
                if spec.issuer.is_none() {
                    return Err(fail("kind \"oidc\" needs issuer".into()));
                }
                spec.fields.email_verified = Some("email_verified".into());
                &["openid", "email", "profile"]
            }
            ProviderKind::Oauth2 => {
                if spec.authorize_url.is_none()
                    || spec.token_url.is_none()
                    || spec.userinfo_url.is_none()
                {
                    return Err(fail(
                        "kind \"oauth2\" needs authorize_url, token_url and userinfo_url".into(),
                    ));
                }
                &[]
            }
            ProviderKind::Github => {
                let base = url("base_url", &self.base_url)?;
                let (web, api) = match &base {
                    // GitHub Enterprise Server serves its API under /api/v3.
                    Some(b) => (b.clone(), join(b, "api/v3/").map_err(fail)?),
                    None => (
                        Url::parse("https://github.com/").map_err(|e| fail(e.to_string()))?,
                        Url::parse("https://api.github.com/").map_err(|e| fail(e.to_string()))?,
                    ),
                };
                preset(&mut spec.authorize_url, &web, "login/oauth/authorize").map_err(fail)?;
                preset(&mut spec.token_url, &web, "login/oauth/access_token").map_err(fail)?;
                preset(&mut spec.userinfo_url, &api, "user").map_err(fail)?;
                spec.fields.subject = "id".into();
                spec.fields.username = "login".into();
                &["read:user", "user:email"]
            }
            ProviderKind::Gitlab => {
                let base = url("base_url", &self.base_url)?
                    .map_or_else(|| Url::parse("https://gitlab.com/"), Ok)
                    .map_err(|e| fail(e.to_string()))?;
                preset(&mut spec.authorize_url, &base, "oauth/authorize").map_err(fail)?;
                preset(&mut spec.token_url, &base, "oauth/token").map_err(fail)?;
                preset(&mut spec.userinfo_url, &base, "api/v4/user").map_err(fail)?;
                preset(&mut spec.revocation_url, &base, "oauth/revoke").map_err(fail)?;
                spec.fields.subject = "id".into();
                spec.fields.username = "username".into();
                &["read_user"]
            }
        };
        spec.scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| default_scopes.iter().map(|s| s.to_string()).collect());
        let field = |v: &Option<String>, dflt: &str| v.clone().unwrap_or_else(|| dflt.to_string());
        spec.fields.subject = field(&self.subject_field, &spec.fields.subject);
        spec.fields.email = field(&self.email_field, &spec.fields.email);
        spec.fields.name = field(&self.name_field, &spec.fields.name);
        spec.fields.username = field(&self.username_field, &spec.fields.username);
        if self.email_verified_field.is_some() {
            spec.fields.email_verified = self.email_verified_field.clone();
        }
        Ok(spec)
    }

    fn client_secret(
        &self,
        name: &str,
        read_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ClientSecret>, ConfigError> {
        let fail = |m: String| ConfigError::Provider(name.to_string(), m);
        match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), Some(_)) => Err(fail(
                "set client_secret_env or client_secret_file, not both".into(),
            )),
            (Some(var), None) => read_env(var)
                .filter(|v| !v.is_empty())
                .map(|v| Some(ClientSecret::new(v)))
                .ok_or_else(|| fail(format!("environment variable {var} is not set"))),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                let secret = text.trim_end_matches(['\r', '\n']).to_string();
                if secret.is_empty() {
                    return Err(fail(format!("{} is empty", path.display())));
                }
                Ok(Some(ClientSecret::new(secret)))
            }
            // A public client at the provider (PKCE only).
            (None, None) => Ok(None),
        }
    }
}

fn join(base: &Url, path: &str) -> Result<Url, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(path).map_err(|e| e.to_string())
}

fn preset(slot: &mut Option<Url>, base: &Url, path: &str) -> Result<(), String> {
    if slot.is_none() {
        *slot = Some(join(base, path)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(toml_text: &str) -> ProviderConfig {
        toml::from_str(toml_text).expect("provider table")
    }

    #[test]
    fn presets_fill_endpoints_and_fields() {
        let gh = provider("kind = \"github\"\nclient_id = \"x\"\n")
            .resolve("github", &|_| None)
            .expect("github");
        assert_eq!(
            gh.token_url.expect("token").as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(
            gh.userinfo_url.expect("user").as_str(),
            "https://api.github.com/user"
        );
        assert_eq!(gh.fields.subject, "id");
        let ghe = provider(
            "kind = \"github\"\nclient_id = \"x\"\nbase_url = \"https://git.corp.example\"\n",
        )
        .resolve("ghe", &|_| None)
        .expect("ghe");
        assert_eq!(
            ghe.userinfo_url.expect("user").as_str(),
            "https://git.corp.example/api/v3/user"
        );
        let gl = provider("kind = \"gitlab\"\nclient_id = \"x\"\nscopes = [\"read_api\"]\n")
            .resolve("gitlab", &|_| None)
            .expect("gitlab");
        assert_eq!(
            gl.revocation_url.expect("revoke").as_str(),
            "https://gitlab.com/oauth/revoke"
        );
        assert_eq!(gl.scopes, vec!["read_api"]);
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let p = provider("kind = \"oidc\"\nissuer = \"http://127.0.0.1:3000\"\nclient_id = \"t\"\nclient_secret_env = \"ACME\"\n");
        let spec = p
            .resolve("acme", &|k| (k == "ACME").then(|| "s3cret".to_string()))
            .expect("resolve");
        assert_eq!(spec.client_secret.expect("secret").secret(), "s3cret");
        let missing = p.resolve("acme", &|_| None).err().expect("missing");
        assert!(missing.to_string().contains("ACME is not set"), "{missing}");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        let p = provider(&format!(
            "kind = \"oidc\"\nissuer = \"http://127.0.0.1:3000\"\nclient_id = \"t\"\nclient_secret_file = {:?}\n",
            path.display().to_string()
        ));
        let spec = p.resolve("acme", &|_| None).expect("resolve");
        assert_eq!(spec.client_secret.expect("secret").secret(), "from-file");
        // The secret never shows in Debug output.
        let shown = format!("{:?}", ClientSecret::new("from-file".into()));
        assert!(!shown.contains("from-file"));
    }

    #[test]
    fn incomplete_providers_are_errors() {
        for (text, why) in [
            ("kind = \"oidc\"\nclient_id = \"t\"\n", "needs issuer"),
            (
                "kind = \"oauth2\"\nclient_id = \"t\"\nauthorize_url = \"https://a.example/auth\"\n",
                "needs authorize_url",
            ),
            (
                "kind = \"oidc\"\nclient_id = \"t\"\nissuer = \"ftp://x\"\n",
                "http(s) URL",
            ),
        ] {
            let err = provider(text).resolve("p", &|_| None).err().expect(why);
            assert!(err.to_string().contains(why), "{err}");
        }
        assert!(toml::from_str::<ProviderConfig>("kind = \"saml\"\nclient_id = \"t\"\n").is_err());
        let mut c = ConnectConfig {
            runtime_environment: "a".into(),
            ..ConnectConfig::default()
        };
        c.environments
            .insert("a".into(), "https://a.example".into());
        assert!(c.validate().is_err(), "an environment may not name itself");
        c.environments.clear();
        c.redirect_origins = vec!["https://ide.example/path".into()];
        assert!(c.validate().is_err(), "redirect origins are origins");
        c.redirect_origins = vec!["https://ide.example".into()];
        assert!(c.validate().is_ok());
    }
}
