// Swagger UI at /swagger in headless Chromium (playwright-core): Authorize
// with a bearer token, "Try it out" on one operation, Execute, and read the
// status Swagger UI renders. Every Content-Security-Policy violation (the
// securitypolicyviolation event and Chromium's console reports) and every
// console error is returned. argv[2]: JSON {url, token, tag, operationId,
// screenshots}. Prints one JSON object; exits non-zero if a step fails.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(process.argv[2]);
fs.mkdirSync(cfg.screenshots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const csp = [];
const errors = [];
try {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (msg) => {
    const text = msg.text();
    if (text.includes('Content Security Policy')) csp.push(text);
    // Failed loads are reported by URL below (the browser's own favicon probe is not one of ours).
    else if (msg.type() === 'error' && !text.startsWith('Failed to load resource')) errors.push(text);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') errors.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Content Security Policy violation (event): ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  const shot = (name) => page.screenshot({ path: path.join(cfg.screenshots, `swagger-${name}.png`), fullPage: true });

  const res = await page.goto(cfg.url);
  const policy = res.headers()['content-security-policy'] || '';
  await page.waitForSelector('.swagger-ui .info .title', { timeout: 30000 });
  await shot('loaded');

  await page.click('.swagger-ui .auth-wrapper button.authorize');
  const modal = page.locator('.swagger-ui .modal-ux');
  await modal.locator('.auth-container input').first().fill(cfg.token);
  await modal.locator('button.authorize').first().click();
  await modal.locator('button.btn-done').first().click();

  const op = page.locator(`#operations-${cfg.tag}-${cfg.operationId}`);
  await op.locator('.opblock-summary').first().click();
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 30000 });
  const code = (await status.innerText()).trim();
  const body = await op.locator('.live-responses-table .response-col_description pre').first().innerText();
  await shot('executed');
  console.log(JSON.stringify({ policy, status: code, body, csp, errors }));
} finally {
  await browser.close();
}
