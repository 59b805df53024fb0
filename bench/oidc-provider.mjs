// Reference server for bench/run.sh: npm `oidc-provider` configured to do the
// same work Tessera does (confidential client, client_secret_post, JWT access
// token signed with BENCH_ALG, RS256 by default) for client_credentials,
// refresh_token (rotating: rotateRefreshToken true) and introspection.
//
// Refresh tokens come from real authorization_code flows (scope
// `openid offline_access`, prompt=consent), driven by oidc-provider-tokens.mjs:
// the interaction URL /interaction/<uid> is answered here without a page, by
// logging in account "bench-user" and granting what the client asked for.
// Access tokens for the resource `<issuer>/bench-api` (the default resource)
// are JWTs; for `<issuer>/bench-opaque` they are opaque, the only kind
// oidc-provider's introspection endpoint accepts (it rejects JWTs).
//
// Usage: BENCH_CLIENT_SECRET=... node oidc-provider.mjs [port]
//   port:            argv[2], else $OIDC_PORT, else 18081
//   BENCH_CLIENT_SECRET (required): secret of client "bench"
//   OIDC_WORKERS:    number of node:cluster workers (default 1 = one process,
//                    how oidc-provider is normally run)
//   OIDC_TOKEN_FORMAT: "jwt" (default) or "opaque"
//
// Prints "oidc-provider listening on http://127.0.0.1:<port> ..." when ready.
import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.OIDC_PORT || 18081);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const secret = process.env.BENCH_CLIENT_SECRET;
const workers = Math.max(1, Number(process.env.OIDC_WORKERS || 1));
const tokenFormat = process.env.OIDC_TOKEN_FORMAT || 'jwt';
// Keycloak's default access token lifespan, which Tessera mirrors.
const accessTokenTTL = 300;
const resource = `${issuer}/bench-api`;
const opaqueResource = `${issuer}/bench-opaque`;

if (!secret) {
  console.error('BENCH_CLIENT_SECRET must be set');
  process.exit(2);
}
if (!['jwt', 'opaque'].includes(tokenFormat)) {
  console.error('OIDC_TOKEN_FORMAT must be "jwt" or "opaque"');
  process.exit(2);
}

// The JWS algorithm of the access tokens: RS256 (default), ES256 or EdDSA,
// the same as Tessera's realm in the same run (BENCH_ALG, from bench/run.sh ALG).
const alg = process.env.BENCH_ALG || 'RS256';

function signingJwk() {
  // One signing key, shared by all workers so every token verifies against
  // the same JWKS.
  if (process.env.BENCH_OIDC_JWK) return JSON.parse(process.env.BENCH_OIDC_JWK);
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'EdDSA'
      ? crypto.generateKeyPairSync('ed25519')
      : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg };
}

const stores = new Map();
class MapAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }
  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    this.store.set(id, { payload, expiresAt });
    if (payload.grantId) {
      const key = `grant:${payload.grantId}`;
      const grants = stores.get('__grants') || stores.set('__grants', new Map()).get('__grants');
      if (!grants.has(key)) grants.set(key, []);
      grants.get(key).push([this.name, id]);
    }
  }
  async find(id) {
    const entry = this.store.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) { this.store.delete(id); return undefined; }
    return entry.payload;
  }
  async findByUid(uid) {
    for (const [id, e] of this.store) if (e.payload.uid === uid) return this.find(id);
    return undefined;
  }
  async findByUserCode(code) {
    for (const [id, e] of this.store) if (e.payload.userCode === code) return this.find(id);
    return undefined;
  }
  async consume(id) {
    const entry = this.store.get(id);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { this.store.delete(id); }
  async revokeByGrantId(grantId) {
    const grants = stores.get('__grants');
    const key = `grant:${grantId}`;
    for (const [name, id] of (grants && grants.get(key)) || []) stores.get(name)?.delete(id);
    grants?.delete(key);
  }
}

if (workers > 1 && cluster.isPrimary) {
  const env = {
    BENCH_OIDC_JWK: JSON.stringify(signingJwk()),
    BENCH_OIDC_COOKIE_KEY: crypto.randomBytes(32).toString('hex'),
  };
  let ready = 0;
  for (let i = 0; i < workers; i += 1) {
    const w = cluster.fork(env);
    w.on('message', (m) => {
      if (m === 'listening' && ++ready === workers) {
        console.log(`oidc-provider listening on ${issuer} (workers=${workers}, access token format=${tokenFormat})`);
      }
    });
  }
  cluster.on('exit', (w, code, signal) => {
    console.error(`oidc-provider worker ${w.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const configuration = {
    // The bundled MemoryAdapter is an LRU of 1,000 entries: a refresh load
    // of a few thousand rotations evicts the grants and sessions of the
    // tokens still in the pool. This one keeps everything (until expiry),
    // as Tessera's database does.
    adapter: MapAdapter,
    clients: [{
      client_id: 'bench',
      client_secret: secret,
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${issuer}/cb`],
      token_endpoint_auth_method: 'client_secret_post',
      // Its only key is of BENCH_ALG, so ID tokens would be too.
      id_token_signed_response_alg: alg,
    }],
    jwks: { keys: [signingJwk()] },
    cookies: { keys: [process.env.BENCH_OIDC_COOKIE_KEY || crypto.randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A client_credentials request without `resource` still gets a token
        // for this resource server, so the wrk load is identical to Tessera's.
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => (indicator === opaqueResource ? {
          scope: '',
          audience: opaqueResource,
          accessTokenTTL,
          accessTokenFormat: 'opaque',
        } : {
          scope: '',
          audience: resource,
          accessTokenTTL,
          accessTokenFormat: tokenFormat,
          jwt: { sign: { alg } },
        }),
      },
    },
    // Refresh tokens are spent once: each refresh returns a new one and a
    // second use of a spent one revokes the grant, as Tessera does.
    rotateRefreshToken: true,
    // The same profile claims Tessera puts in its ID tokens.
    claims: {
      acr: null, auth_time: null, iss: null, sid: null, openid: ['sub'],
      profile: ['preferred_username', 'name', 'given_name', 'family_name'], email: ['email', 'email_verified'] },
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({
        sub,
        preferred_username: sub,
        name: 'Bench User',
        given_name: 'Bench',
        family_name: 'User',
        email: `${sub}@example.test`,
        email_verified: true,
      }),
    }),
    ttl: { ClientCredentials: accessTokenTTL, AccessToken: accessTokenTTL },
  };

  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  // Interactions without a page: log in "bench-user", then grant what the
  // client asked for (the consent prompt that offline_access needs).
  async function interaction(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt } = details;
      let result;
      if (prompt.name === 'login') {
        result = { login: { accountId: 'bench-user' } };
      } else if (prompt.name === 'consent') {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
        const missing = prompt.details;
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
        result = { consent: { grantId: await grant.save() } };
      } else {
        throw new Error(`unexpected prompt ${prompt.name}`);
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    } catch (err) {
      console.error('interaction', err);
      res.statusCode = 500;
      res.end(String(err));
    }
  }
  const callback = provider.callback();
  const server = http.createServer((req, res) => (
    req.url.startsWith('/interaction/') ? interaction(req, res) : callback(req, res)));
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => {
    if (cluster.isWorker) {
      process.send('listening');
    } else {
      console.log(`oidc-provider listening on ${issuer} (workers=1, access token format=${tokenFormat})`);
    }
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
