// tickwire: what the dashboard and the operations page share. The page's settings (user,
// CSRF token, WDS URL and token) come from <meta name="tickwire-config">; the WDS client
// itself is wds-client.js (loaded first), given this page's token and token endpoint here.
'use strict';

const TW = (() => {
  const cfg = JSON.parse(document.querySelector('meta[name="tickwire-config"]').content);

  function toLogin(reason) {
    location.href = '/login?error=' + (reason || 'expired') + '&next=' + encodeURIComponent(location.pathname);
  }

  // Set when the WDS said this session's token was revoked (a logout or password change
  // elsewhere, a removed user): the login page then says why the session ended.
  let revoked = false;

  // fetch with the CSRF header; a 401 means the session is gone: back to the login page.
  async function api(method, path, body) {
    const opts = { method, headers: { 'X-CSRF-Token': cfg.csrf }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      // The control plane says when the session was ended on purpose (`reason`), so the
      // login page says so even when this answer beats the WDS's `token_revoked`.
      let why = null;
      try { why = (await r.json()).reason; } catch (_) { /* no body */ }
      toLogin(revoked || why === 'revoked' ? 'revoked' : 'expired');
      throw new Error('session ended');
    }
    let data = null;
    try { data = await r.json(); } catch (_) { /* empty body */ }
    if (!r.ok) throw new Error((data && data.error) || ('HTTP ' + r.status));
    return data;
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const fmt = {
    price: v => (v === null || v === undefined || isNaN(v)) ? '–' : Number(v).toFixed(Math.abs(v) < 1 ? 4 : 2),
    pct: v => (v === null || v === undefined || isNaN(v)) ? '–' : (v > 0 ? '+' : '') + Number(v).toFixed(2) + '%',
    num: v => {
      if (v === null || v === undefined || isNaN(v)) return '–';
      const a = Math.abs(v);
      if (a >= 1e9) return (v / 1e9).toFixed(2) + 'B';
      if (a >= 1e6) return (v / 1e6).toFixed(2) + 'M';
      if (a >= 1e3) return (v / 1e3).toFixed(1) + 'K';
      return String(Math.round(v * 100) / 100);
    },
    ratio: v => (v === null || v === undefined || isNaN(v)) ? '–' : Number(v).toFixed(2),
    // Market timestamps (epoch ms, or s for alerts) shown in New York time.
    time: v => {
      if (!v) return '–';
      const ms = v < 1e12 ? v * 1000 : v;
      return new Date(ms).toLocaleTimeString('en-US', { timeZone: 'America/New_York', hour12: false });
    },
  };

  function setupHeader() {
    const u = document.getElementById('user');
    if (u) u.textContent = cfg.user + (cfg.roles.includes('admin') ? ' (admin)' : '');
    const out = document.getElementById('logout');
    if (out) out.addEventListener('click', async () => {
      if (TW.wds) TW.wds.close();
      try { await api('POST', '/logout'); } catch (_) { /* already gone */ }
      location.href = '/login';
    });
  }

  // The dashboard's one WDS socket (wds-client.js), fed this page's token and told how to
  // get a fresh one; a revocation remembered here sends the next 401 to the right message.
  class Wds extends WdsClient {
    constructor(onState) {
      super({
        url: cfg.wdsUrl || ((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/v2'),
        token: cfg.token,
        tokenExpiresAt: cfg.tokenExpiresAt,
        fetchToken: () => api('POST', '/api/token'),
        onState,
        onRevoked: () => { revoked = true; },
      });
    }
  }

  function connIndicator(id) {
    const e = document.getElementById(id);
    return (s, detail) => {
      e.className = 'conn ' + s;
      e.textContent = detail ? s + ' (' + detail + ')' : s;
      e.dataset.state = s;
    };
  }

  return { cfg, api, el, fmt, setupHeader, Wds, connIndicator, toLogin, wds: null };
})();
