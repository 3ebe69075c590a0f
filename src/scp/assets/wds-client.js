// tickwire's browser client of the widget data service, protocol v2 (docs/protocol.md; the
// server side is src/actors/wds/protocol.rs): one socket for every widget of a page.
//
// - subscribe(topic, handler) is refcounted per topic; every push names its topic, so one
//   socket carries them all, and a subscribe answers with the cached snapshot, then updates.
// - The socket reconnects with exponential backoff and jitter (0.5 s up to 15 s), at once
//   when the WDS says it is stopping (1001), with a fresh token, and subscribes every topic
//   again, whose snapshots bring the widgets up to date.
// - The WDS closes a socket when its token runs out, so a fresh token is sent on the open
//   socket (an in-band renewal) before that; after a logout the renewal fails and the socket
//   ends. A `token_revoked` error is reported to the page (onRevoked).
'use strict';

class WdsClient {
  // opts: url, token, tokenExpiresAt (epoch s), fetchToken() -> {token, expires_at},
  // onState(state, detail), onRevoked().
  constructor(opts) {
    this.opts = opts;
    this.onState = opts.onState;
    this.topics = new Map(); // topic -> Set(handler)
    this.token = opts.token;
    this.tokenExp = opts.tokenExpiresAt;
    this.attempt = 0;
    this.opens = 0;     // sockets opened (the browser test reads these two)
    this.renewals = 0;  // tokens renewed on an open socket
    this.renewTimer = null;
    this.closed = false;
    this.state('connecting');
    this.open();
  }

  state(s, detail) { this.current = s; if (this.onState) this.onState(s, detail); }

  url() { return this.opts.url; }

  async freshToken() {
    // A new socket starts with a token that has more than 30 s left.
    if (this.tokenExp - Date.now() / 1000 > 30) return;
    const t = await this.opts.fetchToken();
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
    try { t = await this.opts.fetchToken(); } catch (_) { return; }
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
        if (m.code === 'token_revoked') { if (this.opts.onRevoked) this.opts.onRevoked(); this.tokenExp = 0; }
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
