// Browser test of the dashboard in headless Chromium (playwright-core), against a running
// embedded `tickwire` (tests/browser.rs starts it and sets the environment):
//   TW_URL, TW_ADMIN_USER, TW_ADMIN_PASSWORD, TW_VIEWER_USER, TW_VIEWER_PASSWORD,
//   TW_SHOTS (screenshot directory), CHROMIUM (executable).
// Every wait is on a condition with a generous deadline, never a fixed sleep.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const env = k => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const url = env('TW_URL');
const shots = env('TW_SHOTS');
mkdirSync(shots, { recursive: true });
const DEADLINE = 60_000;

function step(name) { console.log(`browser test: ${name}`); }

// Polls an async condition (run in Node) until it holds, failing after the deadline.
async function until(what, f) {
  const end = Date.now() + DEADLINE;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1200 } });
  // Notifications, recorded: the test grants the permission and reads what was shown.
  await context.addInitScript(() => {
    window.__notifications = [];
    window.Notification = class {
      constructor(title, opts) { window.__notifications.push({ title, ...opts }); }
      static get permission() { return 'granted'; }
      static requestPermission() { return Promise.resolve('granted'); }
    };
  });
  page = await context.newPage();
  page.setDefaultTimeout(DEADLINE);
  const errors = [];
  page.on('pageerror', e => errors.push(e.message));

  step('an anonymous visit lands on the login page');
  await page.goto(url + '/');
  await page.waitForURL(/\/login/);
  await page.screenshot({ path: `${shots}/01-login.png` });

  step('a wrong password gets the generic error');
  await page.fill('#username', env('TW_ADMIN_USER'));
  await page.fill('#password', 'not-the-password');
  await page.click('#login-submit');
  await page.waitForSelector('#login-error:has-text("Invalid username or password")');

  step('log in as admin');
  await page.fill('#username', env('TW_ADMIN_USER'));
  await page.fill('#password', env('TW_ADMIN_PASSWORD'));
  await page.click('#login-submit');
  await page.waitForURL(u => !u.pathname.startsWith('/login'));
  await page.waitForSelector('#conn[data-state="live"]');

  step('scanner rows appear and update');
  const gainers = '.widget[data-type="top-gainers"]';
  await page.waitForSelector(`${gainers} tbody tr[data-symbol]`);
  const updates = async () => Number(await page.getAttribute(`${gainers} .body`, 'data-updates'));
  const first = await updates();
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel).dataset.updates) > n,
    [`${gainers} .body`, first]);
  for (const t of ['top-gappers', 'top-volume']) await page.waitForSelector(`.widget[data-type="${t}"] tbody tr[data-symbol]`);
  // Live updates every second: the widget's freshness dot is green.
  await page.waitForSelector('.widget[data-type="top-gainers"] .fresh[data-fresh="green"]');

  step('a dropped socket reconnects with backoff, resubscribes, and updates resume');
  await page.evaluate(() => {
    window.__states = [];
    const conn = document.getElementById('conn');
    new MutationObserver(() => window.__states.push(conn.dataset.state))
      .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
    TW.wds.ws.close();
  });
  await until('the socket goes through reconnecting back to live', () => page.evaluate(() => {
    const s = window.__states;
    return s.includes('reconnecting') && s[s.length - 1] === 'live';
  }));
  const resumed = await updates();
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel).dataset.updates) > n,
    [`${gainers} .body`, resumed]);

  step('the WDS token is renewed on the open socket before it runs out');
  // tests/browser.rs issues 15 s tokens: without the renewal the WDS would close this socket.
  const before = await page.evaluate(() => ({ opens: TW.wds.opens, renewals: TW.wds.renewals, exp: TW.wds.tokenExp }));
  await until('a renewal, and the old token past its expiry', () => page.evaluate(b =>
    TW.wds.renewals > b.renewals && Date.now() / 1000 > b.exp + 1, before));
  const renewed = await page.evaluate(() => ({ opens: TW.wds.opens, state: TW.wds.current }));
  if (renewed.opens !== before.opens || renewed.state !== 'live') {
    throw new Error(`the socket did not survive its token: ${JSON.stringify({ before, renewed })}`);
  }

  step('sorting a scanner by a column header');
  await page.click(`${gainers} th[data-col="symbol"]`);
  await page.waitForSelector(`${gainers} th[data-col="symbol"].sorted`);

  step('clicking a ticker fills the linked quote, daily range and chart');
  const sym = await page.getAttribute(`${gainers} tbody tr[data-symbol]`, 'data-symbol');
  await page.click(`${gainers} tbody tr[data-symbol="${sym}"]`);
  await page.waitForSelector(`.widget[data-type="quote"] .q-sym:text-is("${sym}")`);
  await page.waitForSelector(`.widget[data-type="daily-range"] .q-sym:text-is("${sym}")`);
  // The chart opens with the morning's minute bars (candles and volume, from /api/bars),
  // then live A bars update its last candle.
  const chartSel = '.widget[data-type="candlestick-chart"] .chart';
  await page.waitForFunction(sel => {
    const c = document.querySelector(sel);
    return c && Number(c.dataset.bars) >= 10 && Number(c.dataset.volumeBars) >= 10 && c.querySelector('canvas');
  }, chartSel);
  await page.waitForFunction(sel => Number(document.querySelector(sel).dataset.liveUpdates) >= 2, chartSel);
  await page.waitForSelector('.widget[data-type="range-alerts"] tbody tr[data-symbol]');
  await page.screenshot({ path: `${shots}/02-dashboard.png` });

  step('the chart changes interval: 5-minute candles from the same history, kept in the layout');
  const oneMinute = Number(await page.getAttribute(chartSel, 'data-bars'));
  await page.selectOption('.widget[data-type="candlestick-chart"] select.interval', '5m');
  await page.waitForFunction(([sel, n]) => {
    const c = document.querySelector(sel);
    return /· 5m ·/.test(c.parentElement.querySelector('.as-of').textContent) && Number(c.dataset.bars) >= 2 && Number(c.dataset.bars) < n;
  }, [chartSel, oneMinute]);
  await until('the interval is saved with the layout', () => page.evaluate(async () => {
    const d = await (await fetch('/api/layouts')).json();
    return d.savedLayouts[d.defaultLayoutName].layout.some(i => i.type === 'candlestick-chart' && i.settings && i.settings.interval === '5m');
  }));

  step('the news feed lists headlines; a ticker badge fills the linked company news and quote');
  const feed = '.widget[data-type="news-feed"]';
  // Links open in a new tab without handing the page to the article's site.
  await page.waitForSelector(`${feed} ul.news li a[target="_blank"][rel~="noopener"]`);
  const newsSym = await page.getAttribute(`${feed} .badge.ticker[data-symbol]`, 'data-symbol');
  await page.click(`${feed} .badge.ticker[data-symbol="${newsSym}"]`);
  await page.waitForSelector(`.widget[data-type="company-news"] .hint:text-is("News about ${newsSym}")`);
  await page.waitForFunction(() => Number(document.querySelector('.widget[data-type="company-news"] ul.news').dataset.items) >= 1);
  await page.waitForSelector(`.widget[data-type="quote"] .q-sym:text-is("${newsSym}")`);
  await page.waitForFunction(() => Number(document.querySelector('.widget[data-type="quote"] .ticker-news ul.news').dataset.items) >= 1);
  await page.locator(feed).scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/02b-news.png` });

  step('dragging a header moves a widget, dragging its corner resizes it; both are saved');
  const saved = () => page.evaluate(async () => {
    const d = await (await fetch('/api/layouts')).json();
    return d.savedLayouts[d.defaultLayoutName].layout;
  });
  const quoteId = await page.getAttribute('.widget[data-type="quote"]', 'data-id');
  const placed = (await saved()).find(i => i.i === quoteId);
  const cellW = await page.evaluate(() => document.getElementById('grid').clientWidth / 12);
  await page.locator(`.widget[data-id="${quoteId}"]`).scrollIntoViewIfNeeded();
  const head = await page.locator(`.widget[data-id="${quoteId}"] > header .title`).boundingBox();
  await page.mouse.move(head.x + 5, head.y + 5);
  await page.mouse.down();
  await page.mouse.move(head.x + 5 + cellW, head.y + 8, { steps: 5 });
  await page.mouse.move(head.x + 5 + 2 * cellW, head.y + 8, { steps: 5 });
  await page.mouse.up();
  await until('the move is saved', async () => (await saved()).find(i => i.i === quoteId).x === placed.x + 2);
  const grip = await page.locator(`.widget[data-id="${quoteId}"] > .resize`).boundingBox();
  await page.mouse.move(grip.x + 7, grip.y + 7);
  await page.mouse.down();
  await page.mouse.move(grip.x + 7 + cellW, grip.y + 7 + 2 * 36, { steps: 5 });
  await page.mouse.up();
  await until('the resize is saved', async () => {
    const q = (await saved()).find(i => i.i === quoteId);
    return q.w === placed.w + 1 && q.h === placed.h + 2;
  });
  // Nothing hides behind the moved widget: whatever it covered moved down.
  const layout = await saved();
  const q = layout.find(i => i.i === quoteId);
  const hidden = layout.filter(i => i !== q && i.x < q.x + q.w && q.x < i.x + i.w && i.y < q.y + q.h && q.y < i.y + i.h);
  if (hidden.length) throw new Error(`widgets overlap the moved one: ${JSON.stringify(hidden)}`);

  step('a scanner filters by the momentum preset, saved in its settings, and clears');
  const vol = '.widget[data-type="top-volume"]';
  await page.click(`${vol} .filter-toggle`);
  await page.click(`${vol} form.filters button[name="momentum"]`);
  await page.waitForFunction(sel => /of \d+ symbols/.test(document.querySelector(`${sel} .as-of`).textContent), vol);
  const kept = await page.evaluate(sel => [...document.querySelectorAll(`${sel} tbody tr[data-symbol]`)].every(tr => {
    const price = Number(tr.children[1].textContent.replace(/[$,]/g, ''));
    return price >= 2 && price <= 20;
  }), vol);
  if (!kept) throw new Error('a row outside the $2-$20 preset');
  await until('the filters are saved', async () => (await saved()).some(i => i.type === 'top-volume' && i.settings && i.settings.filters && i.settings.filters.enabled && i.settings.filters.minRelVolume === 5));
  await page.click(`${vol} form.filters button[name="clear"]`);
  await page.waitForSelector(`${vol} tbody tr[data-symbol]`);

  step('a watchlist shows live quotes; an opted-in alert of a watched symbol notifies');
  await page.waitForFunction(() => [...document.querySelectorAll('.widget[data-type="watchlist"] tbody tr[data-symbol]')]
    .some(tr => /[0-9]/.test(tr.children[1].textContent)));
  const alertsSel = '.widget[data-type="range-alerts"]';
  await page.check(`${alertsSel} input[name="notify"]`);
  await page.check(`${alertsSel} input[name="sound"]`);
  await until('a notification for a watched or linked symbol', () => page.evaluate(() => window.__notifications.length > 0));
  const note = await page.evaluate(() => window.__notifications[0]);
  const watchedSyms = await page.evaluate(() => [...document.querySelectorAll('.widget[data-type="watchlist"] tbody tr[data-symbol]')].map(tr => tr.dataset.symbol));
  const followed = [...watchedSyms, sym, newsSym];
  if (!/^(HOD|LOD) [A-Z.]+ /.test(note.title) || !followed.includes(note.title.split(' ')[1])) {
    throw new Error(`unexpected notification ${JSON.stringify(note)} (followed ${followed})`);
  }
  await until('the alert settings are saved', async () => (await saved()).some(i => i.type === 'range-alerts' && i.settings && i.settings.notify && i.settings.sound));

  step('an API key is created, shown once, works as a bearer, and is deleted');
  await page.click('#keys-open');
  await page.fill('#key-name', 'browser test');
  await page.check('#key-scopes input[value="api:read"]');
  await page.click('#key-create');
  await page.waitForSelector('#key-new:not([hidden]) #key-value:text-matches("^twk_")');
  const apiKey = await page.textContent('#key-value');
  const asBearer = () => page.evaluate(async k => (await fetch('/api/control/nodes', { credentials: 'omit', headers: { Authorization: 'Bearer ' + k } })).status, apiKey);
  if (await asBearer() !== 200) throw new Error('the new key is refused');
  if ((await page.textContent('#keys-list')).includes(apiKey)) throw new Error('the key is listed after creation');
  page.once('dialog', d => d.accept());
  await page.click('#keys-list tr:has-text("browser test") button.remove');
  await page.waitForFunction(() => !document.querySelector('#keys-list').textContent.includes('browser test'));
  if (await asBearer() !== 401) throw new Error('a deleted key still works');
  await page.click('#keys-close');

  step('the layout is saved on the server and survives a reload');
  await page.selectOption('#widget-type', 'quote');
  await page.click('#widget-add');
  const count = await page.locator('.widget').count();
  await until('the layout with the new widget is saved', () => page.evaluate(async n => {
    const d = await (await fetch('/api/layouts')).json();
    return d.savedLayouts[d.defaultLayoutName].layout.length === n;
  }, count));
  await page.reload();
  await page.waitForFunction(n => document.querySelectorAll('.widget').length === n, count);

  step('the operations page plots node rates');
  await page.goto(url + '/ops');
  await page.waitForFunction(() => {
    const cell = document.querySelector('#nodes tbody tr td.rate-events');
    return cell && /^[0-9]/.test(cell.textContent) && Number(document.querySelector('#plot-events').dataset.points) >= 3;
  });
  await page.waitForSelector('#plot-events canvas');
  // Every node's loss paths are listed, counted even when nothing was lost.
  await page.waitForFunction(() => document.querySelector('#losses tbody tr[data-metric="tickwire_actor_undelivered_total"]')
    && document.querySelector('#losses tbody tr[data-metric="tickwire_router_skipped_frames_total"]'));
  await page.screenshot({ path: `${shots}/03-operations.png` });

  step('logout revokes access');
  await page.click('#logout');
  await page.waitForURL(/\/login/);
  const after = await page.evaluate(async () => (await fetch('/api/token', { method: 'POST' })).status);
  if (after !== 401) throw new Error(`token after logout: HTTP ${after}, expected 401`);
  await page.goto(url + '/');
  await page.waitForURL(/\/login/);

  step('a viewer sees the dashboard but not the operations page');
  await page.fill('#username', env('TW_VIEWER_USER'));
  await page.fill('#password', env('TW_VIEWER_PASSWORD'));
  await page.click('#login-submit');
  await page.waitForSelector('#conn[data-state="live"]');
  if (await page.isVisible('#ops-link')) throw new Error('a viewer sees the operations link');
  const ops = await page.goto(url + '/ops');
  if (ops.status() !== 403) throw new Error(`viewer /ops: HTTP ${ops.status()}, expected 403`);

  step('the viewer changes their password and logs in with the new one');
  await page.goto(url + '/');
  await page.waitForSelector('#conn[data-state="live"]');
  await page.click('#password-open');
  await page.fill('#password-current', env('TW_VIEWER_PASSWORD'));
  await page.fill('#password-new', 'a-new-viewer-password');
  await page.fill('#password-repeat', 'a-new-viewer-password');
  await page.click('#password-save');
  await page.waitForSelector('#password-result:has-text("Password changed.")');
  await page.click('#password-cancel');
  await page.click('#logout');
  await page.waitForURL(/\/login/);
  await page.fill('#username', env('TW_VIEWER_USER'));
  await page.fill('#password', 'a-new-viewer-password');
  await page.click('#login-submit');
  await page.waitForSelector('#conn[data-state="live"]');

  step("a password change ends the user's other browser at once, its socket too");
  const elsewhere = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const other = await elsewhere.newPage();
  other.setDefaultTimeout(DEADLINE);
  // The WDS tells a v2 client why before it closes: the frame proves the socket was ended by
  // the revocation, not by a failed renewal later on.
  let revoked = false;
  // What the other browser went through, printed if the step fails: its sockets, every frame
  // but the data, its navigations and console.
  const trail = [];
  const t0 = Date.now();
  const mark = what => trail.push(`+${Date.now() - t0} ms ${what}`);
  other.on('websocket', ws => {
    mark(`socket ${ws.url()}`);
    ws.on('framereceived', f => {
      if (typeof f.payload !== 'string') return;
      if (f.payload.includes('"token_revoked"')) revoked = true;
      if (!/"type":"(snapshot|update)"/.test(f.payload)) mark(`frame ${f.payload.slice(0, 160)}`);
    });
    ws.on('close', () => mark('socket closed'));
  });
  other.on('framenavigated', f => { if (f === other.mainFrame()) mark(`page ${f.url()}`); });
  other.on('console', m => mark(`console ${m.type()}: ${m.text()}`));
  other.on('response', r => { if (r.url().includes('/api/')) mark(`HTTP ${r.status()} ${r.url()}`); });
  await other.goto(url + '/login');
  await other.fill('#username', env('TW_VIEWER_USER'));
  await other.fill('#password', 'a-new-viewer-password');
  await other.click('#login-submit');
  await other.waitForSelector('#conn[data-state="live"]');
  await page.click('#password-open');
  await page.fill('#password-current', 'a-new-viewer-password');
  await page.fill('#password-new', 'a-third-viewer-password');
  await page.fill('#password-repeat', 'a-third-viewer-password');
  await page.click('#password-save');
  await page.waitForSelector('#password-result:has-text("Password changed.")');
  await page.click('#password-cancel');
  mark('password changed');
  await until('the other browser is told its token is revoked', async () => revoked)
    .catch(e => { throw new Error(`${e.message}; the other browser:\n  ${trail.join('\n  ')}`); });
  await other.waitForURL(/\/login\?error=revoked/);
  await other.waitForSelector('#login-error:has-text("You were signed out")');
  await page.waitForSelector('#conn[data-state="live"]');
  await elsewhere.close();

  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log('browser test: all steps passed');
} catch (e) {
  if (page) await page.screenshot({ path: `${shots}/failure.png` }).catch(() => {});
  console.error('browser test FAILED:', e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
