// tickwire: what the dashboard and the operations page share. The page's settings (user,
// CSRF token, WDS URL and token) come from <meta name="tickwire-config">; the WDS client
// speaks protocol v2 over one socket with reconnect, backoff and resubscription.
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
    if (r.status === 401) { toLogin(revoked ? 'revoked' : 'expired'); throw new Error('session ended'); }
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

  // One v2 socket for every widget. subscribe() is refcounted per topic; after a reconnect
  // every topic is subscribed again and its snapshot brings the widgets up to date. The WDS
  // closes a socket when its token runs out, so a fresh token is sent on the open socket
  // (an in-band renewal) before that; after logout the renewal fails and the socket ends.
  class Wds {
    constructor(onState) {
      this.onState = onState;
      this.topics = new Map(); // topic -> Set(handler)
      this.token = cfg.token;
      this.tokenExp = cfg.tokenExpiresAt;
      this.attempt = 0;
      this.opens = 0;     // sockets opened (the browser test reads these two)
      this.renewals = 0;  // tokens renewed on an open socket
      this.renewTimer = null;
      this.closed = false;
      this.state('connecting');
      this.open();
    }

    state(s, detail) { this.current = s; if (this.onState) this.onState(s, detail); }

    url() {
      if (cfg.wdsUrl) return cfg.wdsUrl;
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/v2';
    }

    async freshToken() {
      // A new socket starts with a token that has more than 30 s left.
      if (this.tokenExp - Date.now() / 1000 > 30) return;
      const t = await api('POST', '/api/token');
      this.token = t.token; this.tokenExp = t.expires_at;
    }

    async open() {
      try { await this.freshToken(); } catch (e) { this.retry(); return; }
      if (this.closed) return;
      const ws = new WebSocket(this.url());
      this.ws = ws;
      this.opens += 1;
      ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }));
      ws.onmessage = ev => this.message(JSON.parse(ev.data));
      ws.onclose = ev => {
        if (this.ws !== ws) return;
        clearTimeout(this.renewTimer);
        if (ev.code === 1001) this.attempt = 0; // the WDS is stopping: straight to another one
        this.retry();
      };
      ws.onerror = () => { /* onclose follows */ };
    }

    retry() {
      if (this.closed) return;
      this.attempt += 1;
      // Exponential backoff with jitter, 0.5 s up to 15 s.
      const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt - 1, 5)) * (0.75 + Math.random() / 2);
      this.state('reconnecting', 'attempt ' + this.attempt);
      this.tokenExp = 0; // a fresh token for the next socket
      setTimeout(() => this.open(), delay);
    }

    // Renews a third of the token's remaining life before it ends, at most 30 s before.
    scheduleRenewal(expiresAt) {
      clearTimeout(this.renewTimer);
      if (!expiresAt) return; // auth off: nothing expires
      const left = expiresAt - Date.now() / 1000;
      const wait = Math.max(0, left - Math.min(30, left / 3));
      this.renewTimer = setTimeout(() => this.renew(), wait * 1000);
    }

    async renew() {
      const ws = this.ws;
      let t;
      // A 401 (logged out) has already sent the page to the login form; anything else: the
      // socket closes at expiry and the reconnect fetches a token again.
      try { t = await api('POST', '/api/token'); } catch (_) { return; }
      this.token = t.token; this.tokenExp = t.expires_at;
      if (ws === this.ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'auth', token: t.token }));
    }

    message(m) {
      switch (m.type) {
        case 'welcome':
          this.scheduleRenewal(m.expires_at);
          if (this.current === 'live') { this.renewals += 1; break; } // a renewal: topics stay
          this.attempt = 0;
          this.state('live');
          for (const topic of this.topics.keys()) this.send({ type: 'subscribe', topic });
          break;
        case 'snapshot':
        case 'update': {
          const hs = this.topics.get(m.pattern || m.topic);
          if (hs) for (const h of hs) h(m);
          break;
        }
        case 'error':
          console.warn('wds error', m.code, m.message, m.topic || '');
          if (m.code === 'unauthorized' || m.code === 'token_expired') this.tokenExp = 0;
          if (m.code === 'token_revoked') { revoked = true; this.tokenExp = 0; }
          break;
        default:
          break;
      }
    }

    send(obj) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN && this.current === 'live') this.ws.send(JSON.stringify(obj));
    }

    subscribe(topic, handler) {
      let hs = this.topics.get(topic);
      if (!hs) { hs = new Set(); this.topics.set(topic, hs); this.send({ type: 'subscribe', topic }); }
      hs.add(handler);
      return () => this.unsubscribe(topic, handler);
    }

    unsubscribe(topic, handler) {
      const hs = this.topics.get(topic);
      if (!hs) return;
      hs.delete(handler);
      if (hs.size === 0) { this.topics.delete(topic); this.send({ type: 'unsubscribe', topic }); }
    }

    close() { this.closed = true; clearTimeout(this.renewTimer); if (this.ws) this.ws.close(); this.state('offline'); }
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
