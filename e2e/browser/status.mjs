// Drives Debian's Chromium (headless) over the sidecar's status page:
// loads it, fills in the explain form, submits it, and prints what the page
// shows as JSON on stdout. Usage: node status.mjs ADMIN_URL TOKEN_FILE SCREENSHOT
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [adminURL, tokenFile, screenshot] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  const response = await page.goto(adminURL + '/');
  const out = { status: response.status(), title: await page.title() };
  out.realms = await page.locator('#realms').innerText();
  out.routes = await page.locator('#routes').innerText();
  out.reasons = await page.locator('#reasons').innerText();
  await page.fill('input[name=method]', 'POST');
  await page.fill('input[name=path]', '/orders');
  await page.fill('textarea[name=token]', token);
  await Promise.all([page.waitForNavigation(), page.click('#explain button[type=submit]')]);
  out.verdict = await page.locator('#explanation .verdict').innerText();
  out.failed = await page.locator('#explanation td.fail').allInnerTexts();
  out.explanation = await page.locator('#explanation').innerText();
  out.html = await page.content();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
