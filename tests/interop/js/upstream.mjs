// A third-party OpenID provider for Tessera to connect to: npm oidc-provider (panva) with its
// development interactions (a login form that takes any login and password, then a consent
// form). Nothing here knows Tessera.
//
// Usage: node upstream.mjs '{"port": 0, "clientSecret": "...", "redirectUris": ["..."]}'
//   port                      0 (default) picks a free one
//   clientId                  default "tessera"
//   tokenEndpointAuthMethod   default "client_secret_basic" (the Rust oauth2 crate's default)
// Prints one JSON line {"issuer", "port"} once listening; exits 0 on SIGTERM/SIGINT.
//
// Accounts: any login is an account; sub = login, email = login@example.test (verified),
// name, preferred_username = login. Refresh tokens are always issued; access tokens are opaque
// and live an hour, or 3 seconds for logins starting with "short" (to test expiry);
// revocation (/token/revocation) and userinfo (/me) are on.
//
// Test hook (not part of any protocol): GET /test/tokens lists the opaque tokens issued so far,
// [{"kind": "AccessToken" | "RefreshToken", "value", "accountId", "clientId"}], so a test can
// look for a refresh token it never sees in the clear.
import * as crypto from "node:crypto";
import * as http from "node:http";
import Provider from "oidc-provider";

const opts = JSON.parse(process.argv[2] ?? "{}");
const clientId = opts.clientId ?? "tessera";
if (!opts.clientSecret || !Array.isArray(opts.redirectUris) || opts.redirectUris.length === 0) {
  console.error("usage: node upstream.mjs '{\"clientSecret\": ..., \"redirectUris\": [...]}'");
  process.exit(2);
}

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once("error", reject);
  server.listen(opts.port ?? 0, "127.0.0.1", resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const issued = [];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: opts.clientSecret,
      client_name: "Tessera",
      redirect_uris: opts.redirectUris,
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: opts.tokenEndpointAuthMethod ?? "client_secret_basic",
    },
  ],
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims(use, scope, claims, rejected) {
        return {
          sub: id,
          email: `${id}@example.test`,
          email_verified: true,
          name: `${id[0]?.toUpperCase() ?? ""}${id.slice(1)} Upstream`,
          preferred_username: id,
        };
      },
    };
  },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
  },
  scopes: ["openid", "offline_access", "email", "profile"],
  // Always hand out a refresh token (as GitHub-style and many OIDC providers do), not only
  // for offline_access.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed("refresh_token");
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  cookies: { keys: [crypto.randomBytes(32).toString("base64url")] },
  ttl: { AccessToken: (ctx, token) => (token.accountId?.startsWith("short") ? 3 : 3600),
         AuthorizationCode: 120, IdToken: 3600, RefreshToken: 86400,
         Interaction: 600, Session: 3600, Grant: 86400 },
});

// Opaque tokens are stored when issued ("saved"; "issued" is for stateless ones); the value of
// an opaque token is its jti.
for (const kind of ["access_token", "refresh_token"]) {
  provider.on(`${kind}.saved`, (token) => {
    if (!issued.some((t) => t.value === token.jti)) {
      issued.push({ kind: token.kind, value: token.jti, accountId: token.accountId,
                    clientId: token.clientId });
    }
  });
}
// Say why a token or userinfo request failed (on stderr: the test shows it on failure).
for (const event of ["grant.error", "userinfo.error", "revocation.error", "server_error",
                     "authorization.error"]) {
  provider.on(event, (ctx, err) => {
    console.error(`${event}: ${err?.name} ${err?.message} ${err?.error_detail ?? ""}`);
  });
}

provider.use(async (ctx, next) => {
  if (ctx.method === "GET" && ctx.path === "/test/tokens") {
    ctx.body = issued;
    return;
  }
  await next();
});

server.on("request", provider.callback());
process.stdout.write(JSON.stringify({ issuer, port }) + "\n");

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
