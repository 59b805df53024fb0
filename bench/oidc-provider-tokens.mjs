// Tokens from bench/oidc-provider.mjs through real authorization_code flows,
// for bench/run.sh: N times GET /auth (scope "openid offline_access",
// prompt=consent), follow the redirects through the server's page-less
// interactions (login, then consent) with this flow's cookies, and exchange
// the code at /token (client_secret_post). Prints one token a line.
//
// Usage: BENCH_CLIENT_SECRET=... node oidc-provider-tokens.mjs BASE N KIND [RESOURCE]
//   KIND: refresh_token or access_token (the field printed)
//   RESOURCE: resource indicator (default: the server's default, JWT access tokens)
const [base, nArg, kind, resource] = process.argv.slice(2);
const n = Number(nArg);
const secret = process.env.BENCH_CLIENT_SECRET;
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
if (!base || !(n > 0) || !['refresh_token', 'access_token'].includes(kind) || !secret) {
  console.error('usage: BENCH_CLIENT_SECRET=... node oidc-provider-tokens.mjs BASE N refresh_token|access_token [RESOURCE]');
  process.exit(2);
}
const redirectUri = `${base}/cb`;

async function flow(i) {
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    prompt: 'consent',
    state: `s${i}`,
  });
  if (resource) params.set('resource', resource);
  let url = `${base}/auth?${params}`;
  for (let hop = 0; hop < 10; hop += 1) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader() } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`flow ${i}: ${url} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    }
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) {
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`flow ${i}: redirect without code: ${next.href}`);
      const body = new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: redirectUri,
        client_id: clientId, client_secret: secret,
      });
      if (resource) body.set('resource', resource);
      const tok = await fetch(`${base}/token`, { method: 'POST', body });
      const json = await tok.json();
      if (tok.status !== 200 || !json[kind]) {
        throw new Error(`flow ${i}: token endpoint answered ${tok.status}: ${JSON.stringify(json)}`);
      }
      return json[kind];
    }
    url = next.href;
  }
  throw new Error(`flow ${i}: too many redirects`);
}

const out = [];
for (let i = 0; i < n; i += 1) out.push(await flow(i));
process.stdout.write(`${out.join('\n')}\n`);
