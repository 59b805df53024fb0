// Browser sign-in driven by clients nobody here wrote: npm openid-client (the
// relying party) and headless Debian Chromium through playwright-core (the
// person at the keyboard). One flow per run, named by argv[2]; the JSON in
// argv[3] says where the server is and who signs in. Prints one JSON object
// of results; exits non-zero (with the reason on stderr) if a step fails.
//
//   code     discovery, code + PKCE through the login page, userinfo,
//            refresh, RP-initiated logout; the refresh token then fails
//   device   device authorization: openid-client polls while the browser
//            approves the code on the verification page
//   account  the account page: sign out one listed session
//   connect  the account page's "Connected accounts": Connect a provider (its
//            login and consent pages), see it connected, Disconnect it; any
//            Content-Security-Policy violation Chromium reports is returned
//   link     an IDE's connect link: Tessera's login page, its confirmation
//            page (Continue), the provider's pages, the success page
//   signup   an app's sign-up link in an anonymous browser: the provider's
//            pages, Tessera's confirmation page (its code, compared with the
//            app's poll of check-signup), Sign in, the success page
//   visit    open a URL (the CLI's `login --browser` link), sign in, and
//            wait for the CLI's loopback page
import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [flow, raw] = process.argv.slice(2);
const cfg = JSON.parse(raw);
fs.mkdirSync(cfg.screenshots, { recursive: true });

function fail(message) {
  throw new Error(message);
}

/** The relying party's own web server: answers every callback with a page. */
async function callbackServer(port) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html><title>Relying party</title><p>back at the app</p>');
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return server;
}

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  return { browser, page };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(cfg.screenshots, `${name}.png`), fullPage: true });
}

async function signIn(page) {
  await page.waitForSelector('#username');
  await page.fill('#username', cfg.username);
  await page.fill('#password', cfg.password);
  await page.click('#kc-login');
}

async function discover() {
  return client.discovery(new URL(cfg.issuer), cfg.clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
}

async function codeFlow() {
  const config = await discover();
  const rp = await callbackServer(cfg.callbackPort);
  const { browser, page } = await launch();
  try {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: cfg.redirectUri,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    await page.goto(url.href);
    await shot(page, 'login');
    // A wrong password first: one generic message, and the form again.
    await page.fill('#username', cfg.username);
    await page.fill('#password', 'not-the-password');
    await page.click('#kc-login');
    await page.waitForSelector('#login-error');
    const loginError = (await page.textContent('#login-error')).trim();
    await shot(page, 'login-failed');
    await page.fill('#password', cfg.password);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.redirectUri)),
      page.click('#kc-login'),
    ]);
    const tokens = await client.authorizationCodeGrant(config, new URL(page.url()), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    if (refreshed.access_token === tokens.access_token) fail('refresh returned the same access token');

    // A second visit signs in silently (SSO cookie): no login page.
    const again = client.buildAuthorizationUrl(config, {
      redirect_uri: cfg.redirectUri, scope: 'openid', prompt: 'none', state: 's2',
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    await page.goto(again.href);
    const silent = new URL(page.url());
    if (!silent.searchParams.get('code')) fail(`no silent sign-in: ${page.url()}`);

    const endUrl = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: cfg.postLogoutUri,
      state: 'bye-state',
    });
    await page.goto(endUrl.href);
    await page.waitForURL((u) => u.href.startsWith(cfg.postLogoutUri));
    const afterLogout = new URL(page.url());
    let refreshAfterLogout = 'accepted';
    try {
      await client.refreshTokenGrant(config, refreshed.refresh_token);
    } catch (e) {
      refreshAfterLogout = e.error || String(e);
    }
    // Signed out: the authorization endpoint shows the login page again.
    await page.goto(url.href);
    await page.waitForSelector('#username');
    return {
      loginError,
      sub: claims.sub,
      idToken: { nonce: claims.nonce, aud: claims.aud, sid: claims.sid, auth_time: claims.auth_time, at_hash: claims.at_hash },
      userinfo,
      scope: tokens.scope,
      logoutState: afterLogout.searchParams.get('state'),
      refreshAfterLogout,
    };
  } finally {
    await browser.close();
    rp.close();
  }
}

async function deviceFlow() {
  const config = await discover();
  const { browser, page } = await launch();
  try {
    const da = await client.initiateDeviceAuthorization(config, { scope: 'openid' });
    const started = Date.now();
    const polling = client.pollDeviceAuthorizationGrant(config, da);
    await page.goto(da.verification_uri_complete);
    await shot(page, 'device-login');
    await signIn(page);
    await page.waitForSelector('#device-approve');
    await shot(page, 'device-confirm');
    const shownCode = (await page.textContent('#device-code')).trim();
    const shownClient = (await page.textContent('#device-client')).trim();
    await page.click('#device-approve');
    await page.waitForSelector('#message-title');
    const result = (await page.textContent('#message-title')).trim();
    await shot(page, 'device-approved');
    const tokens = await polling;
    return {
      userCode: da.user_code,
      shownCode,
      shownClient,
      result,
      interval: da.interval,
      waitedMs: Date.now() - started,
      username: tokens.claims()?.preferred_username,
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
    };
  } finally {
    await browser.close();
  }
}

async function accountFlow() {
  const { browser, page } = await launch();
  try {
    await page.goto(cfg.accountUrl);
    await signIn(page);
    await page.waitForSelector('#sessions');
    await shot(page, 'account');
    const rows = await page.$$eval('#sessions tbody tr', (trs) => trs.map((tr) => tr.dataset.sessionId));
    if (!rows.includes(cfg.signOutSession)) fail(`session ${cfg.signOutSession} not listed: ${rows}`);
    await page.click(`tr[data-session-id="${cfg.signOutSession}"] button.sign-out`);
    await page.waitForSelector('#account-notice');
    const notice = (await page.textContent('#account-notice')).trim();
    await shot(page, 'account-signed-out');
    const after = await page.$$eval('#sessions tbody tr', (trs) => trs.map((tr) => tr.dataset.sessionId));
    return { listed: rows, notice, after };
  } finally {
    await browser.close();
  }
}

/** The text of the provider's row on the account page, whitespace collapsed. */
async function providerRow(page, name) {
  const row = page.locator(`#providers tr[data-provider="${name}"]`);
  return (await row.innerText()).replace(/\s+/g, ' ').trim();
}

/** The text of an element, whitespace collapsed. */
async function text(page, selector) {
  return (await page.innerText(selector)).replace(/\s+/g, ' ').trim();
}

/**
 * Records every CSP violation Chromium reports on any page (its console message, and the
 * document's securitypolicyviolation event, reported back through the console) and every
 * navigation; `step` runs an action and, if it fails, says where the browser was.
 */
async function watch(page) {
  const csp = [];
  const trail = [];
  page.on('console', (msg) => {
    if (msg.text().includes('Content Security Policy')) csp.push(`${page.url()}: ${msg.text()}`);
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) trail.push(frame.url());
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Content Security Policy violation (event): ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  const step = async (what, action) => {
    try {
      return await action();
    } catch (e) {
      fail(`${what}: ${e.message}\nat ${page.url()}\nCSP: ${JSON.stringify(csp)}\nnavigations: ${trail.join('\n  ')}`);
    }
  };
  return { csp, trail, step };
}

/** The upstream provider's own pages: its login form (any login), then its consent form;
 *  done once the browser has left them for a URL that `back` accepts. */
async function providerPages(page, step, back) {
  await step("the provider's login page", () => page.waitForSelector('input[name="login"]', { timeout: 15000 }));
  await shot(page, 'provider-login');
  await page.fill('input[name="login"]', cfg.upstreamLogin);
  await page.fill('input[name="password"]', 'any-password');
  await page.click('button[type="submit"]');
  await step("the provider's consent page", () => page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached', timeout: 15000 }));
  await shot(page, 'provider-consent');
  await step('consent -> Tessera', () => Promise.all([
    page.waitForURL(back, { timeout: 15000 }),
    page.click('button[type="submit"]'),
  ]));
  await page.waitForLoadState();
}

async function connectFlow() {
  const { browser, page } = await launch();
  const { csp, trail, step } = await watch(page);
  const listed = () => page.$$eval('#providers tr', (trs) => trs.map((tr) => tr.dataset.provider));
  const provider = cfg.provider;
  const button = (value) => `#providers tr[data-provider="${provider}"] button[value="${value}"]`;
  try {
    await page.goto(cfg.accountUrl);
    await signIn(page);
    await step('the account page', () => page.waitForSelector('#providers'));
    await shot(page, 'account-providers');
    const providers = await listed();
    const before = await providerRow(page, provider);

    // Connect: the account page answers 303 to the provider's authorization endpoint.
    await step('Connect -> the provider', () => Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.upstreamIssuer + '/'), { timeout: 15000 }),
      page.click(button('connect-provider')),
    ]));
    await providerPages(page, step, (u) => u.href.startsWith(cfg.successUrl));
    const successUrl = page.url();
    const successText = await text(page, 'body');
    await shot(page, 'provider-connected');

    await page.goto(cfg.accountUrl);
    await step('the account page again', () => page.waitForSelector('#providers'));
    const connected = await providerRow(page, provider);
    await shot(page, 'account-connected');
    // The account API, with the user's bearer token, while connected.
    const api = await fetch(cfg.accountApi, { headers: { authorization: `Bearer ${cfg.token}` } });
    const apiConnected = { status: api.status, body: await api.text() };

    await step('Disconnect', () => Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.accountUrl) && u.href !== cfg.accountUrl, { timeout: 15000 }),
      page.click(button('disconnect-provider')),
    ]));
    const afterUrl = page.url();
    await step('the notice', () => page.waitForSelector('#account-notice'));
    const notice = (await page.textContent('#account-notice')).trim();
    const disconnected = await providerRow(page, provider);
    const connectButton = await page.locator(button('connect-provider')).count();
    await shot(page, 'account-disconnected');
    return {
      providers, before, successUrl, successText, connected, apiConnected,
      afterUrl, notice, disconnected, connectButton, csp, navigations: trail,
    };
  } finally {
    await browser.close();
  }
}

async function linkFlow() {
  const { browser, page } = await launch();
  const { csp, trail, step } = await watch(page);
  try {
    await page.goto(cfg.url);
    await step('the login page', () => page.waitForSelector('#username'));
    await shot(page, 'link-login');
    await signIn(page);
    await step('the confirmation page', () => page.waitForSelector('#connect-confirm'));
    await shot(page, 'connect-confirm');
    const confirmUrl = page.url();
    const shownProvider = await text(page, '#connect-provider');
    const shownUser = await text(page, '#connect-username');
    await step('Continue -> the provider', () => Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.upstreamIssuer + '/'), { timeout: 15000 }),
      page.click('#connect-confirm'),
    ]));
    await providerPages(page, step, (u) => u.href.startsWith(cfg.successUrl));
    const successUrl = page.url();
    const successText = await text(page, 'body');
    await shot(page, 'provider-connected');
    return { confirmUrl, shownProvider, shownUser, successUrl, successText, csp, navigations: trail };
  } finally {
    await browser.close();
  }
}

async function signupFlow() {
  const { browser, page } = await launch();
  const { csp, trail, step } = await watch(page);
  try {
    await step('the sign-up link -> the provider', () => Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.upstreamIssuer + '/'), { timeout: 15000 }),
      page.goto(cfg.url),
    ]));
    await providerPages(page, step, (u) => u.href.startsWith(cfg.callbackPrefix));
    await step('the confirmation page', () => page.waitForSelector('#signup-confirm'));
    await shot(page, 'signup-confirm');
    const shown = {
      app: await text(page, '#signup-app'),
      code: await text(page, '#signup-code'),
      account: await text(page, '#signup-account'),
    };
    // What the app polling check-signup sees meanwhile (it shows the code to its user).
    const poll = await fetch(cfg.checkUrl);
    const pending = { status: poll.status, body: await poll.json() };
    await step('Sign in -> the success page', () => Promise.all([
      page.waitForURL((u) => u.href.startsWith(cfg.successUrl), { timeout: 15000 }),
      page.click('#signup-confirm'),
    ]));
    await page.waitForLoadState();
    const successText = await text(page, 'body');
    await shot(page, 'signup-done');
    return { shown, pending, successUrl: page.url(), successText, csp, navigations: trail };
  } finally {
    await browser.close();
  }
}

async function visitFlow() {
  const { browser, page } = await launch();
  try {
    await page.goto(cfg.url);
    await signIn(page);
    await page.waitForURL((u) => u.href.startsWith('http://127.0.0.1:') && u.pathname === '/callback');
    const text = (await page.textContent('body')).trim();
    await shot(page, 'cli-loopback');
    return { landed: page.url().split('?')[0], text };
  } finally {
    await browser.close();
  }
}

const flows = { code: codeFlow, device: deviceFlow, account: accountFlow, connect: connectFlow,
  link: linkFlow, signup: signupFlow, visit: visitFlow };
try {
  if (!flows[flow]) fail(`unknown flow ${flow}`);
  const out = await flows[flow]();
  process.stdout.write(JSON.stringify(out));
} catch (e) {
  process.stderr.write(`${flow} flow failed: ${e.stack || e}\n`);
  process.exit(1);
}
