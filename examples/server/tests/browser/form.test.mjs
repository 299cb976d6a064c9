// The customer form and the agent console in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), against the real server binary.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { API_KEY, api, logDir, startServer, stopServer } from './server.mjs';

const CARD = {
  number: '4242 4242 4242 4242',
  digits: '4242424242424242',
  expiry: '12/34',
  cvc: '737',
  name: 'Grace Hopper',
};

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let server;
const profiles = [];
const contexts = [];
const pins = [];

/** A browser with a fresh profile of its own. */
async function browser(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'pci-vault-chromium-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    ...options,
  });
  contexts.push(context);
  return context;
}

/**
 * Collects console errors (a CSP violation is one) and page errors. A response's HTTP
 * status, which Chromium also reports on the console, is checked by the tests themselves.
 */
function watch(page) {
  const problems = [];
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && !text.startsWith('Failed to load resource: the server responded with a status of')) {
      problems.push(text);
    }
  });
  page.on('requestfailed', (request) => {
    // A navigation may abort a request still in flight (e.g. the icon); that is no fault.
    if (request.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`request failed: ${request.url()}`);
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  return problems;
}

async function fillCard(page, card) {
  await page.getByLabel(card.labels.number).fill(card.number);
  await page.getByLabel(card.labels.expiry).fill(card.expiry);
  await page.getByLabel(card.labels.cvc).fill(card.cvc);
  await page.getByLabel(card.labels.name).fill(card.name);
}

const ENGLISH = { number: 'Card number', expiry: 'Expiry date', cvc: 'Security code', name: 'Name on the card' };
const GERMAN = { number: 'Kartennummer', expiry: 'Gültig bis', cvc: 'Sicherheitscode', name: 'Name auf der Karte' };

before(async () => {
  server = await startServer('browser');
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  for (const profile of profiles) rmSync(profile, { recursive: true, force: true });
  // The test command's log check looks for these PINs in every log of the run.
  const seen = join(logDir(), '../../seen-pins');
  mkdirSync(seen, { recursive: true });
  appendFileSync(join(seen, 'browser.txt'), pins.map((p) => `${p}\n`).join(''));
  if (!server) return;
  const { exit, log } = await stopServer(server);
  assert.equal(exit.code, 0, `the server did not exit cleanly:\n${log}`);
  assert.ok(!log.includes(CARD.digits) && !log.includes(CARD.number), 'a card number reached the server log');
  assert.ok(!log.includes(CARD.name), 'a cardholder name reached the server log');
  for (const pin of pins) {
    assert.ok(!new RegExp(`(^|[^0-9.])${pin}([^0-9]|$)`).test(log), 'a PIN reached the server log');
  }
});

test('customer fills the form, reads the PIN, the agent reveals it once', async () => {
  const created = await api(server, 'POST', '/v1/sessions', { metadata: { conversation: 'browser-1' } });
  assert.equal(created.status, 201);
  const { id, url } = created.body;

  const context = await browser();
  const page = await context.newPage();
  const problems = watch(page);
  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(headers['cache-control'], 'no-store');
  assert.equal(headers['referrer-policy'], 'no-referrer');

  // Every input is reachable by its label, with the attributes a card form needs.
  const number = page.getByLabel('Card number');
  assert.equal(await number.getAttribute('autocomplete'), 'cc-number');
  assert.equal(await number.getAttribute('inputmode'), 'numeric');
  assert.equal(await page.getByLabel('Security code').getAttribute('autocomplete'), 'cc-csc');

  // Opening the page changed nothing.
  assert.equal((await api(server, 'GET', `/v1/sessions/${id}`)).body.state, 'pending');

  await fillCard(page, { ...CARD, labels: ENGLISH });
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Send securely' }).click()]);
  const pin = (await page.locator('#pin').textContent()).trim();
  pins.push(pin);
  assert.match(pin, /^[0-9]{6}$/);
  // The card number anywhere in the page; the 3-digit CVC as a value of its own (a random PIN,
  // nonce or id may hold those digits by chance) in the text shown or in any attribute.
  const html = await page.content();
  const shown = await page.locator('body').innerText();
  const cvcAlone = new RegExp(`(^|[^0-9A-Za-z_-])${CARD.cvc}($|[^0-9A-Za-z_-])`);
  assert.ok(!html.includes(CARD.digits), 'the PIN page holds the card number');
  assert.ok(!cvcAlone.test(shown) && !html.includes(`"${CARD.cvc}"`), 'the PIN page shows the CVC');

  const status = await api(server, 'GET', `/v1/sessions/${id}`);
  assert.equal(status.body.state, 'submitted');
  const revealed = await api(server, 'POST', `/v1/sessions/${id}/reveal`, { pin });
  assert.equal(revealed.status, 200);
  assert.deepEqual(revealed.body.fields, {
    card_number: CARD.digits,
    expiry: CARD.expiry,
    cvc: CARD.cvc,
    cardholder_name: CARD.name,
  });
  assert.deepEqual(revealed.body.card, { brand: 'visa', masked_number: '424242******4242' });
  const again = await api(server, 'POST', `/v1/sessions/${id}/reveal`, { pin });
  assert.equal(again.status, 410);
  assert.equal(again.body.error.code, 'ALREADY_REVEALED');

  // A second visit shows the neutral page.
  const second = await page.goto(url);
  assert.equal(second.status(), 404);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Link not available');
  assert.equal(await page.locator('input').count(), 0);
  assert.deepEqual(problems, []);
});

test('invalid fields are named, card data is not echoed, German without JavaScript', async () => {
  const { body } = await api(server, 'POST', '/v1/sessions', {});
  const context = await browser({ locale: 'de-DE', javaScriptEnabled: false });
  const page = await context.newPage();
  const problems = watch(page);
  await page.goto(body.url);
  assert.equal(await page.getAttribute('html', 'lang'), 'de');

  await fillCard(page, { ...CARD, number: '4242 4242 4242 4241', cvc: '12', labels: GERMAN });
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sicher senden' }).click()]);
  assert.equal(await page.getByRole('alert').isVisible(), true);
  assert.match(await page.locator('#card_number-error').textContent(), /Kartennummer ist ungültig/);
  assert.match(await page.locator('#cvc-error').textContent(), /Sicherheitscode/);
  assert.equal(await page.getByLabel('Kartennummer').inputValue(), '', 'the card number was echoed');
  assert.equal(await page.getByLabel('Sicherheitscode').inputValue(), '', 'the security code was echoed');
  assert.equal(await page.getByLabel('Gültig bis').inputValue(), CARD.expiry);
  assert.equal(await page.getByLabel('Name auf der Karte').inputValue(), CARD.name);
  assert.equal(await page.getByLabel('Kartennummer').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Kartennummer').fill(CARD.number);
  await page.getByLabel('Sicherheitscode').fill(CARD.cvc);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sicher senden' }).click()]);
  const pin = (await page.locator('#pin').textContent()).trim();
  pins.push(pin);
  assert.match(pin, /^[0-9]{6}$/);
  const revealed = await api(server, 'POST', `/v1/sessions/${body.id}/reveal`, { pin });
  assert.equal(revealed.status, 200);
  assert.equal(revealed.body.fields.card_number, CARD.digits);
  assert.deepEqual(problems, []);
});

test('agent console: create a link, follow its events without polling, reveal with the PIN', async () => {
  const context = await browser();
  const agent = await context.newPage();
  const agentProblems = watch(agent);
  const requests = [];
  agent.on('request', (request) => requests.push({ method: request.method(), path: new URL(request.url()).pathname, at: Date.now() }));
  const response = await agent.goto(`${server.base}/agent`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);

  await agent.getByLabel('API key').fill(API_KEY);
  await agent.getByRole('button', { name: 'Create link' }).click();
  const link = agent.locator('#link');
  await link.waitFor({ state: 'visible' });
  const url = await link.textContent();
  assert.match(url, /\/forms\/[A-Za-z0-9_-]{43}$/);
  assert.equal(await agent.locator('#state').textContent(), 'pending');

  const customer = await context.newPage();
  const customerProblems = watch(customer);
  await customer.goto(url);
  await fillCard(customer, { ...CARD, labels: ENGLISH });
  assert.equal(await agent.getByRole('button', { name: 'Reveal once' }).isVisible(), false, 'reveal offered before submit');
  const submittedAt = Date.now();
  await Promise.all([customer.waitForLoadState('load'), customer.getByRole('button', { name: 'Send securely' }).click()]);
  const pin = (await customer.locator('#pin').textContent()).trim();
  pins.push(pin);

  // The console learns of the submit from its event stream, within a second, without
  // asking for the session's state in between.
  await agent.locator('#state', { hasText: 'submitted' }).waitFor({ timeout: 1_000 });
  const shownAfter = Date.now() - submittedAt;
  assert.ok(shownAfter <= 1_000, `submitted shown after ${shownAfter} ms`);
  const id = url.split('/forms/')[1];
  const statusPath = `/v1/sessions/${id}`;
  assert.deepEqual(
    requests.filter((r) => r.path.startsWith('/v1/sessions/')).filter((r) => r.at < submittedAt),
    [{ method: 'GET', path: `${statusPath}/events`, at: requests.find((r) => r.path === `${statusPath}/events`).at }],
    'the console asked for more than the event stream before the submit',
  );
  // Once submitted it reads the masked card once, to confirm it with the customer.
  await agent.locator('#card-line').waitFor({ state: 'visible' });
  assert.equal(await agent.locator('#summary-brand').textContent(), 'visa');
  assert.equal(await agent.locator('#summary-masked').textContent(), '424242******4242');

  const wrong = pin === '000000' ? '111111' : '000000';
  await agent.getByLabel('PIN from the customer').fill(wrong);
  await agent.getByRole('button', { name: 'Reveal once' }).click();
  await agent.locator('#message', { hasText: 'WRONG_PIN' }).waitFor();
  await agent.locator('#state-detail', { hasText: '4 attempt(s) left' }).waitFor();
  const said = await agent.locator('#message').textContent();
  assert.equal(said.match(/4 attempt\(s\) left/g)?.length, 1, `the attempts left are not said once: ${said}`);

  await agent.getByLabel('PIN from the customer').fill(pin);
  await agent.getByRole('button', { name: 'Reveal once' }).click();
  await agent.locator('#result').waitFor({ state: 'visible' });
  assert.equal(await agent.locator('#brand').textContent(), 'visa');
  assert.equal(await agent.locator('#masked').textContent(), '424242******4242');
  const cells = await agent.locator('#fields tbody td').allTextContents();
  assert.deepEqual(cells, [CARD.digits, CARD.expiry, CARD.cvc, CARD.name]);
  await agent.locator('#state', { hasText: 'revealed' }).waitFor();
  assert.equal(await agent.getByRole('button', { name: 'Cancel session' }).isVisible(), false, 'cancel offered after the reveal');
  assert.equal(await agent.getByRole('button', { name: 'Reveal once' }).isVisible(), false, 'reveal offered after the reveal');
  assert.equal(await agent.locator('#card-line').isVisible(), false);
  const polls = requests.filter((r) => r.method === 'GET' && r.path === statusPath);
  assert.equal(polls.length, 1, `the console read the session's state ${polls.length} times`);
  assert.equal(requests.filter((r) => r.path === `${statusPath}/events`).length, 1, 'the event stream was opened more than once');

  await agent.getByRole('button', { name: 'Clear from screen' }).click();
  assert.equal(await agent.locator('#fields tbody td').count(), 0);
  assert.deepEqual(agentProblems, []);
  assert.deepEqual(customerProblems, []);
});

test('agent console: an event stream refused with 503 (the server full) is tried again', async () => {
  const context = await browser();
  const agent = await context.newPage();
  const problems = watch(agent);
  let refusals = 0;
  await agent.route('**/v1/sessions/*/events', (route) => {
    if (refusals++ === 0) {
      return route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'CAPACITY_EXCEEDED', message: 'capacity exceeded' } }),
      });
    }
    return route.continue();
  });
  await agent.goto(`${server.base}/agent`);
  await agent.getByLabel('API key').fill(API_KEY);
  await agent.getByRole('button', { name: 'Create link' }).click();
  const link = agent.locator('#link');
  await link.waitFor({ state: 'visible' });
  const id = (await link.textContent()).split('/forms/')[1];
  await agent.locator('#state-detail', { hasText: 'CAPACITY_EXCEEDED' }).waitFor();

  const submitted = await fetch(`${server.base}/forms/${id}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ fields: { card_number: CARD.digits, expiry: CARD.expiry, cvc: CARD.cvc, cardholder_name: CARD.name } }),
  });
  assert.equal(submitted.status, 200);
  pins.push((await submitted.json()).pin);
  // The console follows again after its pause and learns of the submission.
  await agent.locator('#state', { hasText: 'submitted' }).waitFor({ timeout: 15_000 });
  assert.ok(refusals >= 2, `the stream was asked for ${refusals} time(s)`);
  assert.deepEqual(problems, []);
});
