// tickwire operations page (admin): every node's figures from GET /api/control/stats every
// 2 s, turned into rates between polls and plotted per node; listener and pool controls.
'use strict';

(() => {
  const { api, el, fmt } = TW;
  const EVERY_MS = 2000;
  const KEEP = 150; // points per plot: five minutes

  // Figures from a node's counters (names as on its /metrics). Rates are per second.
  const sum = (c, re) => Object.entries(c).reduce((a, [k, v]) => a + (re.test(k) && typeof v === 'number' ? v : 0), 0);
  const max = (c, re) => Object.entries(c).reduce((a, [k, v]) => Math.max(a, re.test(k) && typeof v === 'number' ? v : 0), 0);
  const FIGURES = {
    events: { rate: true, f: c => sum(c, /^tickwire_router_events_total/) || sum(c, /^tickwire_processor_events_total/) },
    deliveries: { rate: true, f: c => sum(c, /^tickwire_wds_deliveries_total/) },
    // Every counted loss of the node, whatever its unit (`/stats` → `lost`, src/metrics.rs LOSSES).
    lost: { rate: true, f: (c, s) => Object.values(s.lost || {}).reduce((a, l) => a + (typeof l.total === 'number' ? l.total : 0), 0) },
    reconnects: { rate: false, f: c => sum(c, /_(reconnects|disconnects)_total/) },
    lag: { rate: false, f: c => max(c, /^tickwire_processor_lag_ms/) },
  };

  const history = { t: [] }; // t: poll times (s); per figure: node id -> values
  for (const k of Object.keys(FIGURES)) history[k] = {};
  const last = {}; // node id -> { at, raw: {figure: value} }
  const plots = {};
  let plotNodes = '';

  function figuresOf(id, stats, at) {
    const c = stats.counters || {};
    const raw = {};
    for (const [k, spec] of Object.entries(FIGURES)) raw[k] = spec.f(c, stats);
    const prev = last[id];
    last[id] = { at, raw };
    const out = {};
    for (const [k, spec] of Object.entries(FIGURES)) {
      if (!spec.rate) out[k] = raw[k];
      else out[k] = prev && at > prev.at ? Math.max(0, (raw[k] - prev.raw[k]) / ((at - prev.at) / 1000)) : null;
    }
    return out;
  }

  function controls(n) {
    const cell = el('td', { class: 'controls' });
    const call = (method, path, body) => async () => {
      try { await api(method, '/api/control/nodes/' + encodeURIComponent(n.id) + path, body); status.textContent = 'ok'; } catch (e) { status.textContent = e.message; }
    };
    const status = el('span', { class: 'ctl-status' });
    if (n.role === 'listener' || n.role === 'embedded') {
      for (const cmd of ['start', 'stop', 'restart']) cell.append(el('button', { 'data-cmd': cmd, onclick: call('POST', '/listener/' + cmd) }, cmd));
    }
    if (n.role === 'processor') {
      const input = el('input', { type: 'number', min: 0, size: 3, placeholder: 'max shards' });
      cell.append(input, el('button', { onclick: () => call('PUT', '/pool', { max_shards: input.value === '' || input.value === '0' ? null : Number(input.value) })() }, 'set pool'));
    }
    cell.append(status);
    return cell;
  }

  function render(nodes, at) {
    const tbody = document.querySelector('#nodes tbody');
    const rows = [];
    history.t.push(at / 1000);
    for (const n of nodes) {
      const id = n.node.id;
      const f = n.ok ? figuresOf(id, n.stats, at) : {};
      for (const k of Object.keys(FIGURES)) (history[k][id] = history[k][id] || []).push(n.ok ? f[k] : null);
      const sessions = n.ok && n.stats.node && typeof n.stats.node.sessions === 'number' ? n.stats.node.sessions : null;
      rows.push(el('tr', { 'data-node': id, 'data-role': n.node.role },
        el('td', {}, id), el('td', {}, n.node.role), el('td', {}, n.node.version),
        el('td', {}, Math.round((Date.now() - n.node.heartbeat_ms) / 1000) + ' s ago'),
        el('td', { class: 'num rate-events' }, n.ok ? (f.events === null ? '…' : fmt.num(f.events)) : n.error),
        el('td', { class: 'num' }, n.ok && f.deliveries !== null ? fmt.num(f.deliveries) : '–'),
        el('td', { class: 'num lost' }, n.ok ? fmt.num(last[id].raw.lost) : '–'),
        el('td', { class: 'num' }, n.ok ? fmt.num(f.reconnects) : '–'),
        el('td', { class: 'num' }, n.ok ? fmt.num(f.lag) : '–'),
        el('td', { class: 'num' }, sessions === null ? '–' : String(sessions)),
        controls(n.node)));
    }
    tbody.replaceChildren(...rows);
    renderLosses(nodes);
    // Keep every series as long as the time axis; trim to the window.
    const len = history.t.length;
    for (const k of Object.keys(FIGURES)) for (const id of Object.keys(history[k])) {
      const s = history[k][id];
      while (s.length < len) s.unshift(null);
    }
    if (len > KEEP) {
      history.t.splice(0, len - KEEP);
      for (const k of Object.keys(FIGURES)) for (const id of Object.keys(history[k])) history[k][id].splice(0, len - KEEP);
    }
    plot(nodes.map(n => n.node.id));
  }

  // The "Data lost" table: every loss path any node reports, summed over the nodes, with the
  // nodes that report it. A path that never lost anything still shows, with 0: it is counted.
  function renderLosses(nodes) {
    const paths = {};
    for (const n of nodes) {
      if (!n.ok) continue;
      for (const [metric, l] of Object.entries(n.stats.lost || {})) {
        const p = paths[metric] = paths[metric] || { unit: l.unit, what: l.what, total: 0, where: [] };
        p.total += typeof l.total === 'number' ? l.total : 0;
        if (l.total > 0) p.where.push(n.node.id);
      }
    }
    const rows = Object.entries(paths)
      .sort(([a, x], [b, y]) => (y.total - x.total) || a.localeCompare(b))
      .map(([metric, p]) => el('tr', { 'data-metric': metric, class: p.total > 0 ? 'lossy' : '' },
        el('td', {}, p.what), el('td', { class: 'num' }, fmt.num(p.total)), el('td', {}, p.unit),
        el('td', {}, p.where.join(', ') || '–'), el('td', { class: 'metric' }, metric)));
    document.querySelector('#losses tbody').replaceChildren(...rows);
  }

  function plot(ids) {
    const key = ids.join(',');
    const palette = ['#4aa3ff', '#ffb347', '#77dd77', '#ff6961', '#b19cd9', '#f49ac2', '#aec6cf', '#fdfd96'];
    for (const k of Object.keys(FIGURES)) {
      const data = [history.t, ...ids.map(id => history[k][id] || [])];
      const holder = document.getElementById('plot-' + k);
      if (!plots[k] || key !== plotNodes) {
        if (plots[k]) plots[k].destroy();
        plots[k] = new uPlot({
          width: Math.max(300, holder.clientWidth), height: 180,
          series: [{}, ...ids.map((id, i) => ({ label: id, stroke: palette[i % palette.length], width: 2, spanGaps: true }))],
          axes: [{ stroke: '#aaa', grid: { stroke: '#333' } }, { stroke: '#aaa', grid: { stroke: '#333' } }],
        }, data, holder);
      } else {
        plots[k].setData(data);
      }
      holder.dataset.points = String(history.t.length);
    }
    plotNodes = key;
  }

  const indicator = TW.connIndicator('poll');
  async function poll() {
    try {
      const r = await api('GET', '/api/control/stats');
      render(r.nodes, r.at_ms);
      document.getElementById('ops-error').textContent = '';
      indicator('live');
    } catch (e) {
      document.getElementById('ops-error').textContent = e.message;
      indicator('reconnecting', e.message);
    }
    setTimeout(poll, EVERY_MS);
  }

  TW.setupHeader();
  poll();
})();
