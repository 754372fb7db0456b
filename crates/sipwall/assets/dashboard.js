// sipwall's live dashboard. Reads GET /api/v1/dashboard once (and again after bans change),
// then follows GET /api/v1/events (server-sent events, read with fetch so the operator's
// token can go along as a bearer token). Everything from the daemon, much of it from the
// wire (User-Agents, rules, summaries), is written with textContent, never as markup.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const MIN = 60000;
  const MAX_ROWS = 100;
  let state = null; // the last /api/v1/dashboard answer
  let refreshTimer = null;
  let stream = null; // AbortController of the event stream
  let retryTimer = null;
  // Decisions that arrived over the stream stay highlighted after a reload of the data.
  const liveKeys = new Set();
  const key = (d) => d.at_ms + '|' + d.src + '|' + d.rule;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells, cls) {
    const tr = el('tr', null, cls);
    for (const c of cells) {
      const td = el('td');
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined ? '' : String(c);
      tr.appendChild(td);
    }
    return tr;
  }
  function fill(id, rows, empty, cols) {
    const tb = $(id).tBodies[0];
    tb.replaceChildren();
    if (rows.length === 0) {
      const td = el('td', empty, 'empty');
      td.colSpan = cols;
      const tr = el('tr');
      tr.appendChild(td);
      tb.appendChild(tr);
    }
    for (const r of rows) tb.appendChild(r);
  }
  const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
  const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
  function human(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }
  function say(text, bad) {
    const m = $('msg');
    m.textContent = text;
    m.className = bad ? 'msg err' : 'msg';
  }
  function token() { return $('token').value.trim(); }
  function headers() {
    const h = { Accept: 'application/json' };
    if (token()) h.Authorization = 'Bearer ' + token();
    return h;
  }
  function tag(text, cls) { return el('span', text, 'tag ' + cls); }

  // ---- status and cards
  function renderStatus(st) {
    const observing = st.observe;
    $('observe').hidden = !observing;
    const mt = $('mode-tag');
    mt.textContent = observing ? 'OBSERVING' : 'enforcing';
    mt.className = observing ? 'tag sim' : 'tag o';
    $('sub').textContent = 'version ' + st.version + ', up ' + human(st.now_ms - st.started_ms) +
      ' (since ' + rfc3339(st.started_ms) + '), mode ' + st.mode + ', queues via ' + st.queue_backend +
      ', guarding ' + st.guarded_ports.join(' ') +
      (st.tripwire_ports.length ? ', tripwires ' + st.tripwire_ports.join(' ') : '') +
      (st.simulate.length && !observing ? ', simulating ' + st.simulate.join(' ') : '') +
      (st.trusted_fast_path && st.trusted_fast_path.length
        ? ', trusted fast path ' + st.trusted_fast_path.join(' ') : '');
    const sum = (k) => st.queues.reduce((a, q) => a + (q[k] || 0), 0);
    const cards = [
      [Math.round(sum('packets_per_sec')), 'packets/s judged', ''],
      [sum('dropped'), 'packets dropped', 'bad'],
      [sum('would_drop'), 'would drop (simulated)', observing ? 'bad' : ''],
      [st.bans_active, 'active bans' + (st.bans_simulated ? ' (' + st.bans_simulated + ' simulated)' : ''), 'bad'],
      [st.tracked_sources, 'tracked sources', ''],
      [st.trusted_fast_path_packets == null ? '-' : st.trusted_fast_path_packets,
        'trusted packets, not queued', ''],
      [st.store, 'store', st.store === 'ok' ? 'good' : 'bad'],
    ];
    const box = $('cards');
    box.replaceChildren();
    for (const [v, label, cls] of cards) {
      const c = el('div', null, 'card ' + cls);
      c.appendChild(el('b', v));
      c.appendChild(document.createTextNode(label));
      box.appendChild(c);
    }
  }

  // ---- timeline (SVG, the report's colours)
  function renderTimeline() {
    const t = state.timeline;
    const NS = 'http://www.w3.org/2000/svg';
    const left = 50, top = 10, colw = 14, h = 120;
    const width = left + t.length * colw + 10, height = top + h + 30;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    svg.setAttribute('role', 'img');
    const peak = Math.max(1, ...t.map((b) => b.dropped + b.simulated));
    const text = (x, y, s, anchor) => {
      const e = document.createElementNS(NS, 'text');
      e.setAttribute('x', x); e.setAttribute('y', y);
      if (anchor) e.setAttribute('text-anchor', anchor);
      e.textContent = s;
      svg.appendChild(e);
    };
    const rect = (x, y, hh, fill, title) => {
      const r = document.createElementNS(NS, 'rect');
      r.setAttribute('x', x); r.setAttribute('y', y);
      r.setAttribute('width', colw - 2); r.setAttribute('height', hh);
      r.setAttribute('fill', fill);
      const tt = document.createElementNS(NS, 'title');
      tt.textContent = title;
      r.appendChild(tt);
      svg.appendChild(r);
    };
    text(4, top + 10, String(peak));
    text(4, top + h, '0');
    t.forEach((b, i) => {
      const x = left + i * colw;
      const hd = b.dropped ? Math.max(1, Math.round(b.dropped * h / peak)) : 0;
      const hs = b.simulated ? Math.max(1, Math.round(b.simulated * h / peak)) : 0;
      if (hd) rect(x, top + h - hd, hd, '#c62828', b.dropped + ' dropped in the minute from ' + clock(b.start_ms));
      if (hs) rect(x, top + h - hd - hs, hs, '#ef6c00', b.simulated + ' simulated in the minute from ' + clock(b.start_ms));
    });
    const base = document.createElementNS(NS, 'line');
    base.setAttribute('x1', left); base.setAttribute('x2', left + t.length * colw);
    base.setAttribute('y1', top + h + 1); base.setAttribute('y2', top + h + 1);
    base.setAttribute('stroke', '#999');
    svg.appendChild(base);
    if (t.length) {
      text(left, top + h + 20, rfc3339(t[0].start_ms));
      text(left + t.length * colw, top + h + 20, 'now ' + clock(Date.now()), 'end');
    }
    $('timeline').replaceChildren(svg);
  }

  function bannedNets() {
    return state.bans.map((b) => b.net);
  }
  function renderTop() {
    fill('top', state.top_sources.map((s) => {
      const who = el('span');
      who.appendChild(el('span', s.ip));
      if (s.banned) { who.appendChild(document.createTextNode(' ')); who.appendChild(tag('banned', 'b')); }
      return row([who, s.decisions, s.last_rule, rfc3339(s.last_ms)], 'scanner');
    }), 'no attack recorded in the last hour', 4);
  }
  function renderBans() {
    const now = Date.now();
    fill('bans', state.bans.map((b) => {
      const net = el('span');
      net.appendChild(el('span', b.net));
      if (b.simulated) { net.appendChild(document.createTextNode(' ')); net.appendChild(tag('simulated', 'sim')); }
      let act = '';
      if (!b.simulated) {
        act = el('button', 'unban', 'unban');
        act.dataset.net = b.net;
        act.addEventListener('click', () => unban(b.net, act));
      }
      const tr = row([net, rfc3339(b.until_ms) + ' (' + human(b.until_ms - now) + ' left)',
        b.rule + (b.count > 1 ? ' #' + b.count : ''), b.reason, act], 'scanner');
      tr.dataset.net = b.net;
      return tr;
    }), 'no active ban', 5);
  }
  function decisionRow(d, fresh) {
    const v = el('span');
    v.appendChild(d.simulated ? tag('simulated', 'sim') : tag(d.verdict, d.verdict === 'accept' ? 'o' : 's'));
    const tr = row([rfc3339(d.at_ms), d.src, v, d.rule, d.summary],
      fresh || liveKeys.has(key(d)) ? 'fresh' : '');
    tr.dataset.src = d.src;
    return tr;
  }
  function renderDecisions() {
    fill('decisions', state.recent.map((d) => decisionRow(d, false)), 'no decision recorded yet', 5);
  }
  function renderLearned() {
    fill('learned', (state.learned || []).map((l) => row([l.value, l.kind, l.evidence,
      rfc3339(l.first_seen_ms), rfc3339(l.last_seen_ms), l.pinned ? 'pinned' : ''])),
      'nothing learned yet', 6);
  }
  function render() {
    renderStatus(state.status);
    renderTimeline();
    renderTop();
    renderBans();
    renderDecisions();
    renderLearned();
    document.body.dataset.loaded = String(Date.now());
  }

  async function load() {
    let r;
    try {
      r = await fetch('/api/v1/dashboard', { headers: headers(), cache: 'no-store' });
    } catch (e) {
      say('the daemon does not answer: ' + e.message, true);
      return;
    }
    if (r.status === 401) { say('this daemon wants the API token to be read: type it above', true); return; }
    if (!r.ok) { say('dashboard: HTTP ' + r.status, true); return; }
    state = await r.json();
    render();
    if (state.store_error) say('recorded decisions unreadable: ' + state.store_error, true);
  }
  function refreshSoon(ms) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; load(); }, ms);
  }

  // ---- live events
  function onDecision(d) {
    if (!state) return;
    liveKeys.add(key(d));
    if (liveKeys.size > 1000) liveKeys.delete(liveKeys.values().next().value);
    const tb = $('decisions').tBodies[0];
    const empty = tb.querySelector('td.empty');
    if (empty) tb.replaceChildren();
    tb.insertBefore(decisionRow(d, true), tb.firstChild);
    while (tb.rows.length > MAX_ROWS) tb.deleteRow(tb.rows.length - 1);
    if (d.rule.startsWith('manual.')) return;
    const t = state.timeline;
    const last = t[t.length - 1];
    if (last && d.at_ms >= last.start_ms) {
      if (d.at_ms >= last.start_ms + MIN) { refreshSoon(200); return; }
      if (d.simulated) last.simulated++; else last.dropped++;
      renderTimeline();
    }
    let s = state.top_sources.find((x) => x.ip === d.src);
    if (!s) {
      s = { ip: d.src, decisions: 0, last_ms: 0, last_rule: '', last_summary: '', banned: false };
      state.top_sources.push(s);
    }
    s.decisions++;
    s.last_ms = d.at_ms; s.last_rule = d.rule; s.last_summary = d.summary;
    state.top_sources.sort((a, b) => b.decisions - a.decisions || b.last_ms - a.last_ms);
    state.top_sources.length = Math.min(state.top_sources.length, 10);
    renderTop();
    // Simulated bans never reach the kernel, so no ban event announces them.
    if (d.simulated && d.summary.includes('ban')) refreshSoon(1000);
  }
  function onEvent(name, data) {
    if (name === 'decision') onDecision(JSON.parse(data));
    else if (name === 'ban' || name === 'unban') refreshSoon(150);
    else if (name === 'lagged') refreshSoon(500);
  }
  function live(on, why) {
    const l = $('live');
    l.textContent = on ? 'live' : 'live: off' + (why ? ' (' + why + ')' : '');
    l.className = on ? 'live' : 'live off';
  }
  function reconnect(ms) {
    if (retryTimer) return;
    retryTimer = setTimeout(() => { retryTimer = null; listen(); }, ms);
  }
  async function listen() {
    if (stream) stream.abort();
    const ctl = new AbortController();
    stream = ctl;
    try {
      const r = await fetch('/api/v1/events', { headers: headers(), signal: ctl.signal, cache: 'no-store' });
      if (!r.ok) { live(false, 'HTTP ' + r.status); if (r.status !== 401) reconnect(5000); return; }
      live(true);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let name = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
          }
          if (data) onEvent(name, data);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
    }
    if (stream === ctl) { live(false, 'reconnecting'); reconnect(2000); }
  }

  // ---- unban
  async function unban(net, button) {
    if (!token()) { say('type the API token first: unban needs it', true); $('token').focus(); return; }
    button.disabled = true;
    let r, body = {};
    try {
      r = await fetch('/api/v1/bans/' + encodeURIComponent(net), { method: 'DELETE', headers: headers() });
      body = await r.json().catch(() => ({}));
    } catch (e) {
      button.disabled = false;
      say('unban ' + net + ': ' + e.message, true);
      return;
    }
    if (r.ok) say(body.message || ('unbanned ' + net));
    else say('unban ' + net + ' refused: ' + (body.error || 'HTTP ' + r.status), true);
    button.disabled = false;
    load();
  }

  let typed = null;
  $('token').addEventListener('input', () => {
    clearTimeout(typed);
    typed = setTimeout(() => { load(); listen(); }, 400);
  });
  setInterval(load, 30000);
  load();
  listen();
})();
