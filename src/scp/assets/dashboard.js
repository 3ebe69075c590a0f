// tickwire dashboard: widgets on a 12-column grid, all fed by one WDS v2 socket.
//
// Layouts are saved per user on the server (PUT /api/layouts, autosaved 2 s after a change)
// in the reference web app's shape, so its exports import unchanged. Link groups: a row
// click in a scanner or alert widget (or a ticker badge on a headline) sets its colour group's
// ticker (a second click clears it); the quote, daily-range, chart and company-news widgets
// of that colour follow. Each widget's dot
// tells how fresh it is, as in the reference: green when an update came within 5 s, yellow
// within 60 s, red when older (or only a cached snapshot so far), blinking while the
// socket reconnects.
'use strict';

(() => {
  const { api, el, fmt } = TW;
  const COLORS = ['red', 'orange', 'yellow', 'green', 'blue', 'violet', 'pink', 'cyan', 'white'];
  const MAX_ROWS = 50;

  // ---- link groups -------------------------------------------------------------------
  const groups = {}; // colour -> ticker
  const followers = new Set(); // widgets that follow a group's ticker

  function pick(widget, symbol) {
    const c = widget.item.linkColor;
    if (!c) return; // not linked: nothing follows it
    groups[c] = groups[c] === symbol ? null : symbol;
    for (const f of followers) if (f.item.linkColor === c) f.setTicker(groups[c]);
    for (const w of widgets) if (w.item.linkColor === c && w.markSelected) w.markSelected(groups[c]);
  }

  // ---- widgets -------------------------------------------------------------------------
  const SCANNER_COLUMNS = [
    ['symbol', 'Symbol', v => v],
    ['close', 'Price', fmt.price],
    ['change', 'Change', fmt.price],
    ['pct_change', 'Change %', fmt.pct],
    ['pct_change_since_open', 'Chg % (Open)', fmt.pct],
    ['accumulated_volume', 'Volume', fmt.num],
    ['free_float', 'Float', fmt.num],
    ['relative_volume', 'Rel. Vol.', fmt.ratio],
    ['avg_volume', 'Avg Vol', fmt.num],
    ['prev_day_close', 'PD Close', fmt.price],
    ['aggregate_vwap', 'VWAP', fmt.price],
  ];

  // Scanner filters, saved in the widget's `settings.filters` (off until the user turns them
  // on; the momentum preset is the reference web app's defaults: $2-$20, 100K+ volume,
  // relative volume 5+, change 10 %+). `settings.columns` lists the columns shown.
  const MOMENTUM = { enabled: true, minPrice: 2, maxPrice: 20, minVolume: 100000, minRelVolume: 5, minChangePct: 10 };
  const FILTER_FIELDS = [
    ['minPrice', 'Price from $', 'close', (v, x) => v >= x],
    ['maxPrice', 'to $', 'close', (v, x) => v <= x],
    ['minVolume', 'Min volume', 'accumulated_volume', (v, x) => v >= x],
    ['minRelVolume', 'Min rel. vol.', 'relative_volume', (v, x) => v >= x],
    ['minChangePct', 'Min change %', 'pct_change', (v, x) => v >= x],
  ];
  function passes(f, r) {
    if (!f || !f.enabled) return true;
    return FILTER_FIELDS.every(([k, , col, ok]) => f[k] === undefined || f[k] === null || f[k] === '' || ok(Number(r[col]) || 0, Number(f[k])));
  }

  function scanner(key, defaultSort) {
    return (w, body) => {
      const settings = w.item.settings || (w.item.settings = {});
      let rows = [];
      let sort = { col: defaultSort, desc: true };
      let heard = 0;
      const thead = el('tr');
      const tbody = el('tbody');
      const asOf = el('span', { class: 'as-of' }, 'waiting for data…');
      const shown = () => SCANNER_COLUMNS.filter(([col]) => col === 'symbol' || !Array.isArray(settings.columns) || settings.columns.includes(col));
      function header() {
        thead.replaceChildren(...shown().map(([col, label]) => el('th', {
          'data-col': col,
          onclick: () => { sort = { col, desc: sort.col === col ? !sort.desc : true }; render(); },
        }, label)));
      }
      // The filter form: each field, the columns, on/off, the momentum preset.
      const form = el('form', { class: 'filters', hidden: '' });
      function buildForm() {
        const f = settings.filters || {};
        const inputs = FILTER_FIELDS.map(([k, label]) => el('label', {}, label + ' ', el('input', { type: 'number', step: 'any', min: '0', name: k, value: f[k] ?? '' })));
        const cols = SCANNER_COLUMNS.filter(([c]) => c !== 'symbol').map(([c, label]) => el('label', { class: 'col' },
          el('input', { type: 'checkbox', name: 'col', value: c, ...(shown().some(([x]) => x === c) ? { checked: '' } : {}) }), ' ' + label));
        form.replaceChildren(
          el('label', {}, el('input', { type: 'checkbox', name: 'enabled', ...(f.enabled ? { checked: '' } : {}) }), ' Filter rows'),
          ...inputs,
          el('fieldset', {}, el('legend', {}, 'Columns'), ...cols),
          el('menu', {},
            el('button', { type: 'button', name: 'momentum', onclick: () => { settings.filters = { ...MOMENTUM }; buildForm(); apply(); } }, 'Momentum preset'),
            el('button', { type: 'button', name: 'clear', onclick: () => { settings.filters = { enabled: false }; buildForm(); apply(); } }, 'Clear')));
      }
      function apply() {
        const f = { enabled: form.elements.enabled.checked };
        for (const [k] of FILTER_FIELDS) {
          const v = form.elements[k].value;
          if (v !== '' && Number.isFinite(Number(v))) f[k] = Number(v);
        }
        settings.filters = f;
        settings.columns = [...form.querySelectorAll('input[name="col"]:checked')].map(i => i.value);
        header(); render(); changed();
      }
      form.addEventListener('change', apply);
      form.addEventListener('submit', e => { e.preventDefault(); apply(); });
      const toggle = el('button', { class: 'filter-toggle', title: 'Filters and columns', onclick: () => { form.hidden = !form.hidden; if (!form.hidden) buildForm(); } }, 'Filters');
      header();
      body.append(el('div', { class: 'scanner-bar' }, asOf, toggle), form,
        el('div', { class: 'scroll' }, el('table', { class: 'data scanner' }, el('thead', {}, thead), tbody)));
      function render() {
        const f = settings.filters;
        const kept = rows.filter(r => passes(f, r));
        const sorted = kept.sort((a, b) => {
          const x = a[sort.col], y = b[sort.col];
          const c = (typeof x === 'string' || typeof y === 'string') ? String(x).localeCompare(String(y)) : (x ?? -Infinity) - (y ?? -Infinity);
          return sort.desc ? -c : c;
        }).slice(0, MAX_ROWS);
        for (const th of thead.children) th.className = th.dataset.col === sort.col ? (sort.desc ? 'sorted desc' : 'sorted asc') : '';
        // Market time of the newest row (ET); when this page heard it, in the viewer's clock.
        const newest = rows.reduce((m, r) => Math.max(m, r.end_timestamp || 0), 0);
        asOf.textContent = (f && f.enabled ? kept.length + ' of ' : '') + rows.length + ' symbols'
          + (newest ? ' · as of ' + fmt.time(newest) + ' ET' : '')
          + (heard ? ' · heard ' + new Date(heard).toLocaleTimeString([], { hour12: false }) + ' your time' : '');
        body.dataset.kept = String(kept.length);
        const cols = shown();
        // Replaced whole on every update: a shrinking list leaves no stale rows behind.
        tbody.replaceChildren(...sorted.map(r => {
          const tr = el('tr', { 'data-symbol': r.symbol, onclick: () => pick(w, r.symbol) },
            ...cols.map(([col, , fm]) => el('td', { class: col === 'symbol' ? 'sym' : 'num' + (typeof r[col] === 'number' && col.includes('change') ? (r[col] > 0 ? ' up' : r[col] < 0 ? ' down' : '') : '') }, fm(r[col]))));
          if (groups[w.item.linkColor] === r.symbol) tr.classList.add('selected');
          return tr;
        }));
      }
      w.markSelected = () => render();
      w.unsubs.push(w.subscribe(key, m => {
        rows = Array.isArray(m.data) ? m.data : [];
        heard = Date.now();
        body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
        render();
      }));
    };
  }

  function card(fields) {
    return el('dl', { class: 'card' }, ...fields.flatMap(([k, v, cls]) => [el('dt', {}, k), el('dd', { class: cls || '' }, v)]));
  }

  function cls(v) { return v > 0 ? 'up' : v < 0 ? 'down' : ''; }

  // A widget showing one ticker's value topic (`{prefix}{SYM}`), following its link group;
  // with `news`, the ticker's latest few headlines under it.
  function follower(prefix, render, news) {
    return (w, body) => {
      const content = el('div', { class: 'ticker-body' }, el('p', { class: 'hint' }, 'Click a ticker in a linked widget, or type one above.'));
      body.append(content);
      const headlines = news ? newsList(w, news) : null;
      if (headlines) body.append(el('div', { class: 'ticker-news' }, el('h4', {}, 'Latest news'), headlines.list));
      let unsub = null;
      let unsubNews = null;
      w.setTicker = sym => {
        if (unsub) { unsub(); unsub = null; }
        if (unsubNews) { unsubNews(); unsubNews = null; }
        w.resetFreshness(); // another ticker
        w.tickerInput.value = sym || '';
        if (headlines) headlines.clear();
        if (!sym) { content.replaceChildren(el('p', { class: 'hint' }, 'No ticker selected.')); return; }
        content.replaceChildren(el('p', { class: 'hint' }, 'Loading ' + sym + '…'));
        unsub = w.subscribe(prefix + sym, m => { if (m.data) content.replaceChildren(render(m.data, m)); });
        if (headlines) unsubNews = TW.wds.subscribe('news:ticker:' + sym, headlines.add);
      };
      w.unsubs.push(() => unsub && unsub());
      w.unsubs.push(() => unsubNews && unsubNews());
      followers.add(w);
      w.unsubs.push(() => followers.delete(w));
    };
  }

  const quote = follower('quote:', d => el('div', {},
    el('div', { class: 'quote-head' },
      el('span', { class: 'q-sym' }, d.symbol),
      el('span', { class: 'q-price' }, fmt.price(d.close)),
      el('span', { class: 'q-chg ' + cls(d.change) }, fmt.price(d.change) + ' (' + fmt.pct(d.pct_change) + ')')),
    card([
      ['Since open', fmt.pct(d.pct_change_since_open), cls(d.pct_change_since_open)],
      ['Day open', fmt.price(d.official_open_price)],
      ['VWAP', fmt.price(d.aggregate_vwap)],
      ['Volume', fmt.num(d.accumulated_volume)],
      ['Rel. volume', fmt.ratio(d.relative_volume)],
      ['Avg volume', fmt.num(d.avg_volume)],
      ['Float', fmt.num(d.free_float)],
      ['PD close', fmt.price(d.prev_day_close)],
      ['PD volume', fmt.num(d.prev_day_volume)],
      ['PD VWAP', fmt.price(d.prev_day_vwap)],
      ['As of', fmt.time(d.end_timestamp) + ' ET'],
    ])), 3);

  const dailyRange = follower('daily_range:', d => el('div', {},
    el('div', { class: 'quote-head' },
      el('span', { class: 'q-sym' }, d.symbol),
      el('span', { class: 'q-price' }, fmt.price(d.close)),
      el('span', { class: 'q-chg ' + cls(d.pct_change) }, fmt.pct(d.pct_change))),
    el('table', { class: 'data range' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Session'), el('th', {}, 'High'), el('th', {}, 'Low'))),
      el('tbody', {},
        el('tr', {}, el('td', {}, 'Pre-market'), el('td', { class: 'num' }, fmt.price(d.pre_market_high)), el('td', { class: 'num' }, fmt.price(d.pre_market_low))),
        el('tr', {}, el('td', {}, 'Regular'), el('td', { class: 'num' }, fmt.price(d.regular_session_high)), el('td', { class: 'num' }, fmt.price(d.regular_session_low))),
        el('tr', {}, el('td', {}, 'After-hours'), el('td', { class: 'num' }, fmt.price(d.after_hours_high)), el('td', { class: 'num' }, fmt.price(d.after_hours_low))),
        el('tr', {}, el('td', {}, 'Previous day'), el('td', { class: 'num' }, fmt.price(d.prev_day_high)), el('td', { class: 'num' }, fmt.price(d.prev_day_low))))),
    el('div', { class: 'as-of' }, 'as of ' + fmt.time(d.end_timestamp) + ' ET')));

  function rangeAlerts(w, body) {
    const cap = (w.item.settings && w.item.settings.maxEvents) || 100;
    let alerts = [];
    const tbody = el('tbody');
    body.append(alertControls(w), el('div', { class: 'scroll' }, el('table', { class: 'data alerts' },
      el('thead', {}, el('tr', {}, ...['Time (ET)', 'Symbol', 'Alert', 'Session', 'Alert $', 'Prev $', 'Change %', 'Volume', 'Note'].map(h => el('th', {}, h)))),
      tbody)));
    function render() {
      tbody.replaceChildren(...alerts.map(a => el('tr', { 'data-symbol': a.symbol, class: groups[w.item.linkColor] === a.symbol ? 'selected' : '', onclick: () => pick(w, a.symbol) },
        el('td', {}, fmt.time(a.timestamp)),
        el('td', { class: 'sym' }, a.symbol),
        el('td', { class: a.direction === 'high' ? 'up' : 'down' }, a.direction === 'high' ? 'HOD' : 'LOD'),
        el('td', {}, a.session),
        el('td', { class: 'num' }, fmt.price(a.price)),
        el('td', { class: 'num' }, fmt.price(a.previous)),
        el('td', { class: 'num ' + cls(a.pct_change) }, fmt.pct(a.pct_change)),
        el('td', { class: 'num' }, fmt.num(a.accumulated_volume)),
        el('td', {}, a.note || ''))));
    }
    w.markSelected = () => render();
    const add = m => {
      const items = m.type === 'snapshot' ? (Array.isArray(m.data) ? m.data : []) : [m.data];
      alerts = alerts.concat(items.filter(a => a && a.symbol))
        .sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0)).slice(0, cap);
      render();
      // Only live alerts ring: a snapshot is the past.
      if (m.type === 'update' && m.data && m.data.symbol) announce(w, m.data);
    };
    for (const k of ['daily_range_hod_alert', 'daily_range_lod_alert']) w.unsubs.push(w.subscribe(k, add));
  }

  // ---- alerts: sound and browser notifications (opt-in, per Range Alerts widget) ------------
  // For the alerts of the symbols the user follows: the link groups' tickers and every
  // watchlist's symbols. Settings: `settings.sound`, `settings.notify` (booleans).
  function watched() {
    const set = new Set(Object.values(groups).filter(Boolean));
    for (const w of widgets) if (w.item.type === 'watchlist') for (const s of (w.item.settings && w.item.settings.symbols) || []) set.add(s);
    return set;
  }

  let audio = null;
  function beep(high) {
    try {
      audio = audio || new AudioContext();
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = high ? 880 : 440;
      g.gain.setValueAtTime(0.15, audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
      o.connect(g).connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.25);
    } catch (_) { /* no audio here */ }
  }

  function announce(w, a) {
    const st = w.item.settings || {};
    if (!(st.sound || st.notify) || !watched().has(a.symbol)) return;
    const what = (a.direction === 'high' ? 'HOD' : 'LOD') + ' ' + a.symbol + ' ' + fmt.price(a.price);
    w.el.dataset.announced = String(Number(w.el.dataset.announced || 0) + 1);
    if (st.sound) beep(a.direction === 'high');
    if (st.notify && 'Notification' in window && Notification.permission === 'granted') {
      new Notification(what, { body: (a.session || '') + ' · ' + fmt.time(a.timestamp) + ' ET · change ' + fmt.pct(a.pct_change), tag: 'tw-' + a.symbol });
    }
  }

  function alertControls(w) {
    const st = w.item.settings || (w.item.settings = {});
    const box = (name, label, on) => el('label', { title: 'For the linked and watched symbols' },
      el('input', { type: 'checkbox', name, ...(st[name] ? { checked: '' } : {}), onchange: async e => {
        st[name] = e.target.checked;
        if (name === 'notify' && st.notify && 'Notification' in window && Notification.permission !== 'granted') {
          const p = await Notification.requestPermission();
          if (p !== 'granted') { st.notify = false; e.target.checked = false; }
        }
        if (on) on();
        changed();
      } }), ' ' + label);
    return el('div', { class: 'alert-controls' }, box('sound', 'Sound'), box('notify', 'Notify'),
      el('span', { class: 'hint' }, 'for linked and watched symbols'));
  }

  // ---- watchlist: symbols the user picks, live quotes ------------------------------------
  function watchlist(w, body) {
    const st = w.item.settings || (w.item.settings = {});
    st.symbols = Array.isArray(st.symbols) ? st.symbols : [];
    const subs = new Map(); // symbol -> unsubscribe
    const quotes = new Map();
    const tbody = el('tbody');
    const input = el('input', { class: 'ticker', placeholder: 'add ticker', size: 8 });
    const form = el('form', { class: 'watch-add', onsubmit: e => {
      e.preventDefault();
      const sym = input.value.trim().toUpperCase();
      input.value = '';
      if (/^[A-Z0-9.:_-]{1,16}$/.test(sym) && !st.symbols.includes(sym)) { st.symbols.push(sym); follow(sym); render(); changed(); }
    } }, input, el('button', { type: 'submit' }, 'Add'));
    body.append(form, el('div', { class: 'scroll' }, el('table', { class: 'data watch' },
      el('thead', {}, el('tr', {}, ...['Symbol', 'Price', 'Change %', 'Chg % (Open)', 'Volume', 'Rel. Vol.', ''].map(h => el('th', {}, h)))), tbody)));
    function follow(sym) {
      subs.set(sym, w.subscribe('quote:' + sym, m => { if (m.data) { quotes.set(sym, m.data); render(); } }));
    }
    function render() {
      tbody.replaceChildren(...st.symbols.map(sym => {
        const q = quotes.get(sym) || {};
        return el('tr', { 'data-symbol': sym, class: groups[w.item.linkColor] === sym ? 'selected' : '', onclick: () => pick(w, sym) },
          el('td', { class: 'sym' }, sym),
          el('td', { class: 'num' }, fmt.price(q.close)),
          el('td', { class: 'num ' + cls(q.pct_change) }, fmt.pct(q.pct_change)),
          el('td', { class: 'num ' + cls(q.pct_change_since_open) }, fmt.pct(q.pct_change_since_open)),
          el('td', { class: 'num' }, fmt.num(q.accumulated_volume)),
          el('td', { class: 'num' }, fmt.ratio(q.relative_volume)),
          el('td', {}, el('button', { class: 'remove', title: 'Remove', onclick: e => {
            e.stopPropagation();
            st.symbols = st.symbols.filter(x => x !== sym);
            const u = subs.get(sym); if (u) u(); subs.delete(sym); quotes.delete(sym);
            render(); changed();
          } }, '✕')));
      }));
    }
    for (const sym of st.symbols) follow(sym);
    render();
    w.markSelected = () => render();
    w.unsubs.push(() => { for (const u of subs.values()) u(); });
  }

  // ---- news -----------------------------------------------------------------------------
  // Finlight articles as the news processor lists them (newest first). A repeated link is
  // an update: it replaces the shown copy. Links open in a new tab, and only http(s) ones are
  // links at all (an article is outside input).
  const safeLink = u => (typeof u === 'string' && /^https?:\/\//i.test(u)) ? u : null;
  const newsTime = a => {
    const t = Date.parse(a.publishDate || a.createdAt || '');
    if (isNaN(t)) return '–';
    return new Date(t).toLocaleString('en-US', { timeZone: 'America/New_York', hour12: false, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) + ' ET';
  };
  const usTickers = a => [...new Set((a.companies || [])
    .filter(c => c && c.primaryListing && ['XNYS', 'XASE', 'XNAS'].includes(String(c.primaryListing.exchangeCode).toUpperCase()))
    .map(c => String(c.primaryListing.ticker || c.ticker || '').toUpperCase()).filter(Boolean))];

  function newsList(w, cap) {
    let items = [];
    const list = el('ul', { class: 'news' });
    function render() {
      list.replaceChildren(...items.map(a => {
        const href = safeLink(a.link);
        const title = href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, a.title) : el('span', {}, a.title);
        const sentiment = a.sentiment ? el('span', { class: 'badge sentiment ' + String(a.sentiment).toLowerCase() }, a.sentiment) : null;
        const tickers = usTickers(a).map(t => el('span', {
          class: 'badge ticker' + (groups[w.item.linkColor] === t ? ' selected' : ''), 'data-symbol': t,
          onclick: () => pick(w, t),
        }, t));
        return el('li', { 'data-link': a.link || '' },
          el('div', { class: 'news-meta' }, el('span', { class: 'news-time' }, newsTime(a)), el('span', { class: 'news-source' }, a.source || ''), sentiment, ...tickers),
          el('div', { class: 'news-title' }, a.isUpdate ? el('span', { class: 'badge update' }, 'update') : null, title));
      }));
      list.dataset.items = String(items.length);
    }
    const add = m => {
      const incoming = (m.type === 'snapshot' ? (Array.isArray(m.data) ? m.data : []) : [m.data])
        .filter(a => a && typeof a === 'object' && a.title);
      if (m.type === 'snapshot') items = [];
      for (const a of incoming.slice().reverse()) {
        items = items.filter(x => x.link !== a.link);
        items.unshift(a);
      }
      items = items.slice(0, cap);
      render();
    };
    return { list, add, clear: () => { items = []; render(); }, render };
  }

  function newsFeed(w, body) {
    const n = newsList(w, (w.item.settings && w.item.settings.maxArticles) || 200);
    body.append(el('div', { class: 'scroll' }, n.list));
    w.markSelected = () => n.render();
    w.unsubs.push(w.subscribe('news:feed:latest', n.add));
  }

  function companyNews(w, body) {
    const n = newsList(w, 100);
    const hint = el('p', { class: 'hint' }, 'Click a ticker in a linked widget, or type one above.');
    body.append(hint, el('div', { class: 'scroll' }, n.list));
    let unsub = null;
    w.setTicker = sym => {
      if (unsub) { unsub(); unsub = null; }
      w.resetFreshness();
      w.tickerInput.value = sym || '';
      n.clear();
      hint.textContent = sym ? 'News about ' + sym : 'No ticker selected.';
      if (sym) unsub = w.subscribe('news:ticker:' + sym, n.add);
    };
    w.unsubs.push(() => unsub && unsub());
    followers.add(w);
    w.unsubs.push(() => followers.delete(w));
  }

  // Market times on the chart, in New York time like every market time on the page.
  const ET = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  function etParts(t) {
    const p = {};
    for (const x of ET.formatToParts(new Date(t * 1000))) p[x.type] = x.value;
    return p;
  }
  function etLabel(t, withSeconds) {
    const p = etParts(t);
    return p.month + ' ' + p.day + ' ' + p.hour + ':' + p.minute + (withSeconds ? ':' + p.second : '') + ' ET';
  }
  // The axis: dates where the day changes, times (ET) elsewhere.
  function etTick(t, kind) {
    const p = etParts(t);
    if (kind <= 2) return p.month + ' ' + p.day;
    return p.hour + ':' + p.minute + (kind === 4 ? ':' + p.second : '');
  }

  // Price Chart: candles and a volume pane (TradingView Lightweight Charts), history from the
  // control plane (GET /api/bars: Massive aggregates fetched with the server's key) when the
  // widget opens, live `A` bars merged into the last candle, a crosshair readout, and lines
  // at the previous close and the day's high and low (from `daily_range:{SYM}`).
  const INTERVALS = { '1s': 1, '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '1d': 86400 };

  function chart(w, body) {
    const LC = window.LightweightCharts;
    const settings = w.item.settings || (w.item.settings = {});
    let interval = INTERVALS[settings.interval] ? settings.interval : '1m';
    const select = el('select', { class: 'interval', title: 'Interval', onchange: () => {
      interval = select.value; settings.interval = interval; changed(); w.setTicker(sym);
    } }, ...Object.keys(INTERVALS).map(k => el('option', { value: k }, k)));
    select.value = interval;
    const label = el('span', { class: 'as-of' }, 'Click a ticker in a linked widget, or type one above.');
    const readout = el('span', { class: 'readout' });
    const holder = el('div', { class: 'chart' });
    body.append(el('div', { class: 'chart-bar' }, select, label, readout), holder);
    const ch = LC.createChart(holder, {
      autoSize: true,
      layout: { background: { color: 'transparent' }, textColor: '#aaa', panes: { separatorColor: '#333' } },
      grid: { vertLines: { color: '#222' }, horzLines: { color: '#222' } },
      rightPriceScale: { borderColor: '#333' },
      timeScale: { borderColor: '#333', timeVisible: true, secondsVisible: true, tickMarkFormatter: etTick },
      localization: { timeFormatter: t => etLabel(t, interval === '1s') },
    });
    const candles = ch.addSeries(LC.CandlestickSeries, { upColor: '#26a69a', downColor: '#ef5350', borderVisible: false, wickUpColor: '#26a69a', wickDownColor: '#ef5350' });
    const volume = ch.addSeries(LC.HistogramSeries, { priceFormat: { type: 'volume' }, color: 'rgba(74,163,255,0.5)', priceLineVisible: false, lastValueVisible: false }, 1);
    ch.panes()[0].setStretchFactor(3);
    ch.panes()[1].setStretchFactor(1);
    let bars = []; // [{time, open, high, low, close}] oldest first, with .volume
    let sym = null;
    let unsubs = [];
    let generation = 0; // a newer ticker or interval makes older answers moot
    const lines = {};
    function line(name, price, color, title) {
      if (lines[name]) { candles.removePriceLine(lines[name]); delete lines[name]; }
      if (price > 0) lines[name] = candles.createPriceLine({ price, color, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title });
    }
    function show() {
      candles.setData(bars.map(b => ({ time: b.time, open: b.open, high: b.high, low: b.low, close: b.close })));
      volume.setData(bars.map(b => ({ time: b.time, value: b.volume, color: b.close >= b.open ? 'rgba(38,166,154,0.5)' : 'rgba(239,83,80,0.5)' })));
      holder.dataset.bars = String(bars.length);
      holder.dataset.volumeBars = String(bars.filter(b => b.volume > 0).length);
      const last = bars[bars.length - 1];
      if (last) { holder.dataset.lastTime = String(last.time); holder.dataset.lastClose = String(last.close); }
    }
    // The bucket a bar starting at `t` (s) belongs to; a day is New York's.
    function bucket(t) {
      const step = INTERVALS[interval];
      if (step < 86400) return Math.floor(t / step) * step;
      const last = bars[bars.length - 1];
      if (last && t >= last.time && t < last.time + 86400 && etParts(t).day === etParts(last.time).day) return last.time;
      return t - (t % 60);
    }
    function live(m) {
      const b = m.data;
      if (!b || b.event_type !== 'A' || !(b.close > 0) || !b.start_timestamp) return;
      const t = bucket(Math.floor(b.start_timestamp / 1000));
      const last = bars[bars.length - 1];
      if (last && t < last.time) return; // older than what is drawn
      let candle;
      if (last && last.time === t) {
        last.high = Math.max(last.high, b.high); last.low = Math.min(last.low, b.low);
        last.close = b.close; last.volume += b.volume || 0;
        candle = last;
      } else {
        candle = { time: t, open: b.open || b.close, high: b.high, low: b.low, close: b.close, volume: b.volume || 0 };
        bars.push(candle);
        if (bars.length > 5000) bars.shift();
      }
      candles.update({ time: candle.time, open: candle.open, high: candle.high, low: candle.low, close: candle.close });
      volume.update({ time: candle.time, value: candle.volume, color: candle.close >= candle.open ? 'rgba(38,166,154,0.5)' : 'rgba(239,83,80,0.5)' });
      holder.dataset.bars = String(bars.length);
      holder.dataset.lastTime = String(candle.time); holder.dataset.lastClose = String(candle.close);
      holder.dataset.liveUpdates = String(Number(holder.dataset.liveUpdates || 0) + 1);
    }
    function levels(m) {
      const d = m.data;
      if (!d) return;
      const highs = [d.pre_market_high, d.regular_session_high, d.after_hours_high].filter(x => x > 0);
      const lows = [d.pre_market_low, d.regular_session_low, d.after_hours_low].filter(x => x > 0);
      line('prev', d.prev_day_close, '#999', 'PD close');
      line('hod', highs.length ? Math.max(...highs) : 0, '#26a69a', 'HOD');
      line('lod', lows.length ? Math.min(...lows) : 0, '#ef5350', 'LOD');
    }
    ch.subscribeCrosshairMove(p => {
      const c = p && p.time !== undefined ? p.seriesData.get(candles) : null;
      if (!c) { readout.textContent = ''; return; }
      const v = p.seriesData.get(volume);
      readout.textContent = 'O ' + fmt.price(c.open) + ' H ' + fmt.price(c.high) + ' L ' + fmt.price(c.low) + ' C ' + fmt.price(c.close) + ' V ' + fmt.num(v ? v.value : 0);
    });
    async function history(s, gen) {
      label.textContent = s + ' · loading history…';
      try {
        const r = await api('GET', '/api/bars?ticker=' + encodeURIComponent(s) + '&interval=' + interval);
        if (gen !== generation) return;
        const past = r.bars.map(b => ({ time: b[0], open: b[1], high: b[2], low: b[3], close: b[4], volume: b[5] }));
        // Live bars that came while the history loaded stay (they are newer).
        const first = bars.length ? bars[0].time : Infinity;
        bars = past.filter(b => b.time < first).concat(bars);
        show();
        ch.timeScale().fitContent();
        label.textContent = s + ' · ' + interval + ' · ' + past.length + ' bars of history';
      } catch (e) {
        if (gen === generation) label.textContent = s + ' · no history (' + e.message + '); live bars only';
      }
    }
    w.setTicker = s => {
      generation += 1;
      for (const u of unsubs) u();
      unsubs = [];
      w.resetFreshness();
      sym = s; bars = [];
      for (const k of Object.keys(lines)) line(k, 0);
      w.tickerInput.value = s || '';
      show();
      holder.dataset.liveUpdates = '0';
      if (!s) { label.textContent = 'No ticker selected.'; return; }
      unsubs.push(w.subscribe('stocks:agg:' + s, live), w.subscribe('daily_range:' + s, levels));
      history(s, generation);
    };
    w.unsubs.push(() => { for (const u of unsubs) u(); ch.remove(); });
    followers.add(w);
    w.unsubs.push(() => followers.delete(w));
  }

  const TYPES = {
    'top-gainers': { label: 'Top Gainers', make: scanner('scanners:top_gainers', 'pct_change_since_open') },
    'top-gappers': { label: 'Top Gappers', make: scanner('scanners:top_gappers', 'pct_change') },
    'top-volume': { label: 'Top Volume', make: scanner('scanners:top_volume', 'relative_volume') },
    'quote': { label: 'Quote', make: quote, follows: true },
    'daily-range': { label: 'Daily Range', make: dailyRange, follows: true },
    'range-alerts': { label: 'Range Alerts (HOD/LOD)', make: rangeAlerts },
    'candlestick-chart': { label: 'Price Chart', make: chart, follows: true },
    'news-feed': { label: 'News Feed', make: newsFeed },
    'company-news': { label: 'Company News', make: companyNews, follows: true },
    'watchlist': { label: 'Watchlist', make: watchlist },
  };
  // Type names saved by the reference web app that these widgets stand in for.
  const ALIASES = { 'enhanced-quote': 'daily-range', 'enhanced-quote-v3': 'daily-range', 'enhanced-quote-v4': 'daily-range', 'tv-lite-chart': 'candlestick-chart' };

  // ---- layout --------------------------------------------------------------------------
  let doc = { savedLayouts: {}, defaultLayoutName: null };
  let current = null;
  let widgets = [];
  let saveTimer = null;
  const grid = document.getElementById('grid');

  function defaultLayout() {
    const item = (n, type, x, y, w, h) => ({ i: 'widget-' + n, type, x, y, w, h, linkColor: 'red' });
    return {
      layout: [
        item(1, 'top-gainers', 0, 0, 6, 11), item(2, 'top-gappers', 6, 0, 6, 11),
        item(3, 'quote', 0, 11, 3, 11), item(4, 'daily-range', 3, 11, 3, 11), item(5, 'candlestick-chart', 6, 11, 6, 11),
        item(6, 'top-volume', 0, 22, 6, 11), item(7, 'range-alerts', 6, 22, 6, 11),
        item(8, 'news-feed', 0, 33, 6, 11), item(9, 'company-news', 6, 33, 6, 11),
        { ...item(10, 'watchlist', 0, 44, 6, 9), settings: { symbols: ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN'] } },
      ],
      widgetCounter: 10, dashboardColNum: 12, created: Date.now(), modified: Date.now(), description: 'tickwire default',
    };
  }

  function layout() { return doc.savedLayouts[current]; }

  function changed() {
    const l = layout();
    l.layout = widgets.map(w => w.item);
    l.modified = Date.now();
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, 2000);
  }

  async function save() {
    clearTimeout(saveTimer); saveTimer = null;
    // The answer is not taken as the new `doc`: a change made while this save was in flight
    // lives only in the local `doc`, and the next save must carry it.
    try { await api('PUT', '/api/layouts', doc); } catch (e) { console.warn('layout not saved:', e.message); }
  }

  // Leaving the page with an autosave still pending: send it anyway (keepalive outlives the page).
  addEventListener('pagehide', () => {
    if (!saveTimer) return;
    clearTimeout(saveTimer); saveTimer = null;
    fetch('/api/layouts', { method: 'PUT', keepalive: true, credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': TW.cfg.csrf }, body: JSON.stringify(doc) });
  });

  function place(w) {
    const it = w.item;
    w.el.style.gridColumn = (it.x + 1) + ' / span ' + Math.max(1, it.w);
    w.el.style.gridRow = (it.y + 1) + ' / span ' + Math.max(2, it.h);
  }

  // One grid cell in pixels (12 columns, 30 px rows, the CSS gaps).
  function cell() {
    const cs = getComputedStyle(grid);
    const gap = parseFloat(cs.columnGap) || 0, rowGap = parseFloat(cs.rowGap) || 0;
    const inner = grid.clientWidth - (parseFloat(cs.paddingLeft) || 0) - (parseFloat(cs.paddingRight) || 0);
    return { x: (inner - gap * 11) / 12 + gap, y: 30 + rowGap };
  }

  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  // After a move or resize, widgets under the one placed move down below it (and those under
  // them, in turn), as gridstack does: nothing ends up hidden behind another.
  function settle(moved) {
    const queue = [moved];
    while (queue.length) {
      const top = queue.shift().item;
      for (const o of widgets) {
        if (o.item === top || !overlaps(o.item, top)) continue;
        o.item.y = top.y + top.h;
        place(o);
        queue.push(o);
      }
    }
  }

  function dragOn(handle, w, mode) {
    handle.addEventListener('pointerdown', e => {
      if (e.button !== 0 || e.target.closest('input, select, button, a, option')) return;
      e.preventDefault();
      const it = w.item, c = cell();
      const start = { px: e.clientX, py: e.clientY, x: it.x, y: it.y, w: it.w, h: it.h };
      handle.setPointerCapture(e.pointerId);
      w.el.classList.add('dragging');
      const move = ev => {
        const dx = Math.round((ev.clientX - start.px) / c.x), dy = Math.round((ev.clientY - start.py) / c.y);
        if (mode === 'move') { it.x = clamp(start.x + dx, 0, 12 - it.w); it.y = clamp(start.y + dy, 0, 10000); }
        else { it.w = clamp(start.w + dx, 1, 12 - it.x); it.h = clamp(start.h + dy, 2, 200); }
        place(w);
      };
      const up = () => {
        handle.removeEventListener('pointermove', move);
        handle.removeEventListener('pointerup', up);
        handle.removeEventListener('pointercancel', up);
        w.el.classList.remove('dragging');
        if (it.x !== start.x || it.y !== start.y || it.w !== start.w || it.h !== start.h) { settle(w); changed(); }
      };
      handle.addEventListener('pointermove', move);
      handle.addEventListener('pointerup', up);
      handle.addEventListener('pointercancel', up);
    });
  }

  function mount(item) {
    const type = TYPES[item.type] ? item.type : ALIASES[item.type];
    const spec = TYPES[type];
    // lastUpdate: when the last live update came (0: none yet); cached: a snapshot brought
    // a stored value.
    const w = { item, unsubs: [], lastUpdate: 0, cached: false };
    w.resetFreshness = () => { w.lastUpdate = 0; w.cached = false; };
    // Every subscription goes through here, so the freshness dot sees every live update.
    w.subscribe = (topic, handler) => TW.wds.subscribe(topic, m => {
      if (m.type === 'update') w.lastUpdate = Date.now();
      if (m.type === 'snapshot' && m.data !== null) w.cached = true;
      handler(m);
      showFreshness(w);
    });
    w.fresh = el('span', { class: 'fresh', 'data-fresh': 'none', title: 'no data yet' });
    const linkSel = el('select', { class: 'link', title: 'Link group', onchange: () => {
      item.linkColor = linkSel.value || undefined;
      w.el.dataset.link = linkSel.value;
      if (w.setTicker && item.linkColor) w.setTicker(groups[item.linkColor] || null);
      changed();
    } }, el('option', { value: '' }, '–'), ...COLORS.map(c => el('option', { value: c }, c)));
    linkSel.value = item.linkColor || '';
    const nudge = (field, d) => () => { item[field] = Math.max(field === 'w' ? 1 : field === 'h' ? 2 : 0, Math.min(field === 'x' ? 12 - item.w : field === 'w' ? 12 - item.x : field === 'y' ? 10000 : 200, item[field] + d)); place(w); settle(w); changed(); };
    const edit = el('span', { class: 'edit' },
      el('button', { title: 'Left', onclick: nudge('x', -1) }, '←'), el('button', { title: 'Right', onclick: nudge('x', 1) }, '→'),
      el('button', { title: 'Up', onclick: nudge('y', -1) }, '↑'), el('button', { title: 'Down', onclick: nudge('y', 1) }, '↓'),
      el('button', { title: 'Narrower', onclick: nudge('w', -1) }, '⇤'), el('button', { title: 'Wider', onclick: nudge('w', 1) }, '⇥'),
      el('button', { title: 'Shorter', onclick: nudge('h', -1) }, '⤒'), el('button', { title: 'Taller', onclick: nudge('h', 1) }, '⤓'),
      el('button', { title: 'Remove', class: 'remove', onclick: () => remove(w) }, '✕'));
    w.tickerInput = el('input', { class: 'ticker', placeholder: 'ticker', size: 6, onchange: () => {
      const s = w.tickerInput.value.trim().toUpperCase() || null;
      if (item.linkColor) { groups[item.linkColor] = s; for (const f of followers) if (f.item.linkColor === item.linkColor) f.setTicker(s); } else if (w.setTicker) w.setTicker(s);
    } });
    const head = el('header', {}, w.fresh, el('span', { class: 'title' }, item.userLabel || (spec ? spec.label : item.type)),
      spec && spec.follows ? w.tickerInput : null, el('span', { class: 'spacer' }), linkSel, edit);
    const body = el('div', { class: 'body' });
    // Drag the header to move, the corner grip to resize (snapped to the grid); the buttons
    // above do the same from the keyboard.
    const grip = el('span', { class: 'resize', title: 'Drag to resize' });
    w.el = el('section', { class: 'widget', 'data-type': type || item.type, 'data-id': item.i, 'data-link': item.linkColor || '' }, head, body, grip);
    dragOn(head, w, 'move');
    dragOn(grip, w, 'resize');
    place(w);
    grid.append(w.el);
    if (spec) spec.make(w, body);
    else body.append(el('p', { class: 'hint' }, 'Widget type "' + item.type + '" is not available here; it is kept in the layout.'));
    if (w.setTicker && item.linkColor && groups[item.linkColor]) w.setTicker(groups[item.linkColor]);
    widgets.push(w);
    return w;
  }

  // none: nothing yet; red: only a cached snapshot, or the last update is over 60 s old.
  function showFreshness(w) {
    let state = 'none';
    let title = 'no data yet';
    if (w.lastUpdate > 0) {
      const age = (Date.now() - w.lastUpdate) / 1000;
      state = age < 5 ? 'green' : age < 60 ? 'yellow' : 'red';
      title = 'last update ' + Math.round(age) + ' s ago';
    } else if (w.cached) {
      state = 'red'; title = 'cached value only: no live update yet';
    }
    if (w.fresh.dataset.fresh !== state) w.fresh.dataset.fresh = state;
    w.fresh.title = title;
    w.fresh.classList.toggle('reconnecting', TW.wds.current !== 'live');
  }
  setInterval(() => { for (const w of widgets) showFreshness(w); }, 1000);

  // The header's Password button: the user changes their own password (POST /api/password).
  function setupPassword() {
    const dialog = document.getElementById('password-dialog');
    const field = id => document.getElementById(id);
    const result = field('password-result');
    field('password-open').addEventListener('click', () => {
      field('password-form').reset();
      result.textContent = '';
      dialog.showModal();
    });
    field('password-cancel').addEventListener('click', () => dialog.close());
    field('password-form').addEventListener('submit', async ev => {
      ev.preventDefault();
      if (field('password-new').value !== field('password-repeat').value) {
        result.textContent = 'The new passwords differ.';
        return;
      }
      result.textContent = 'Changing…';
      try {
        await api('POST', '/api/password', { current: field('password-current').value, new: field('password-new').value });
        field('password-form').reset();
        result.textContent = 'Password changed.';
      } catch (e) {
        result.textContent = e.message;
      }
    });
  }

  // The header's API keys button: the user's keys for their own programs (/api/relay-keys).
  function setupKeys() {
    const field = id => document.getElementById(id);
    const dialog = field('keys-dialog');
    const result = field('keys-result');
    if (TW.cfg.roles.includes('admin')) for (const e of dialog.querySelectorAll('.admin-only')) e.hidden = false;
    async function load() {
      const keys = await api('GET', '/api/relay-keys');
      field('keys-list').replaceChildren(...keys.map(k => el('tr', { 'data-id': k.id },
        el('td', {}, k.name), el('td', {}, k.scopes.join(' ')),
        el('td', {}, new Date(k.created).toLocaleString()),
        el('td', {}, el('button', { type: 'button', class: 'remove', onclick: async () => {
          if (!confirm('Delete the key "' + k.name + '"? Programs using it stop at once.')) return;
          try { await api('DELETE', '/api/relay-keys/' + encodeURIComponent(k.id)); result.textContent = 'Deleted.'; } catch (e) { result.textContent = e.message; }
          load();
        } }, 'Delete')))));
    }
    field('keys-open').addEventListener('click', async () => {
      field('keys-form').reset();
      field('key-new').hidden = true;
      result.textContent = '';
      dialog.showModal();
      try { await load(); } catch (e) { result.textContent = e.message; }
    });
    field('keys-close').addEventListener('click', () => { field('key-value').textContent = ''; dialog.close(); });
    field('key-copy').addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(field('key-value').textContent); result.textContent = 'Copied.'; } catch (_) { result.textContent = 'Select the key and copy it.'; }
    });
    field('keys-form').addEventListener('submit', async ev => {
      ev.preventDefault();
      const scopes = [...dialog.querySelectorAll('input[name="scope"]:checked')].map(i => i.value);
      try {
        const k = await api('POST', '/api/relay-keys', { name: field('key-name').value, scopes });
        field('key-value').textContent = k.key;
        field('key-new').hidden = false;
        result.textContent = 'Key "' + k.name + '" created.';
        await load();
      } catch (e) {
        result.textContent = e.message;
      }
    });
  }

  function remove(w) {
    for (const u of w.unsubs) u();
    w.el.remove();
    widgets = widgets.filter(x => x !== w);
    changed();
  }

  function show(name) {
    for (const w of widgets) for (const u of w.unsubs) u();
    widgets = [];
    grid.replaceChildren();
    current = name;
    for (const item of layout().layout) mount(item);
    refreshSelect();
  }

  function refreshSelect() {
    const sel = document.getElementById('layout-select');
    sel.replaceChildren(...Object.keys(doc.savedLayouts).map(n => el('option', { value: n }, n + (n === doc.defaultLayoutName ? ' (default)' : ''))));
    sel.value = current;
  }

  async function load() {
    doc = await api('GET', '/api/layouts');
    if (!doc.savedLayouts || Object.keys(doc.savedLayouts).length === 0) {
      doc = { savedLayouts: { Default: defaultLayout() }, defaultLayoutName: 'Default' };
      await save();
    }
    const name = (doc.defaultLayoutName && doc.savedLayouts[doc.defaultLayoutName]) ? doc.defaultLayoutName
      : doc.savedLayouts.__autosave__ ? '__autosave__' : Object.keys(doc.savedLayouts)[0];
    show(name);
  }

  function setupToolbar() {
    const typeSel = document.getElementById('widget-type');
    typeSel.replaceChildren(...Object.entries(TYPES).map(([t, s]) => el('option', { value: t }, s.label)));
    document.getElementById('widget-add').addEventListener('click', () => {
      const l = layout();
      l.widgetCounter = (l.widgetCounter || widgets.length) + 1;
      const bottom = widgets.reduce((m, w) => Math.max(m, w.item.y + w.item.h), 0);
      mount({ i: 'widget-' + l.widgetCounter, type: typeSel.value, x: 0, y: bottom, w: 6, h: 11, linkColor: 'red' });
      changed();
    });
    document.getElementById('layout-select').addEventListener('change', e => show(e.target.value));
    setupPassword();
    setupKeys();
    document.getElementById('layout-save-as').addEventListener('click', () => {
      const name = (prompt('Name of the new layout') || '').trim();
      if (!name) return;
      doc.savedLayouts[name] = JSON.parse(JSON.stringify({ ...layout(), created: Date.now(), modified: Date.now() }));
      show(name);
      save();
    });
    document.getElementById('layout-default').addEventListener('click', () => { doc.defaultLayoutName = current; refreshSelect(); save(); });
    document.getElementById('layout-import').addEventListener('change', async e => {
      const f = e.target.files[0];
      if (!f) return;
      try {
        doc = await api('POST', '/api/layouts/import', await f.text());
        show(doc.defaultLayoutName && doc.savedLayouts[doc.defaultLayoutName] ? doc.defaultLayoutName : current);
      } catch (err) { alert('Import failed: ' + err.message); }
      e.target.value = '';
    });
    if (TW.cfg.roles.includes('admin')) document.getElementById('ops-link').hidden = false;
  }

  TW.setupHeader();
  TW.wds = new TW.Wds(TW.connIndicator('conn'));
  setupToolbar();
  load().catch(e => console.error('layouts:', e));
})();
