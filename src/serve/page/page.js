/* tcp-checker serve: the status page's script. A plain ES module: no build step, no dependency.
 *
 * - Polls `api/targets` (relative: works behind a path prefix) 2 s apart, the next once the last
 *   has ended. A poll that fails, or has no answer in 15 s, shows since when the service does not
 *   answer; the last data stay, greyed (`data-stale` on <body>). No polls while hidden.
 * - Keeps the targets in the API's array (state ranks in a typed array beside it, search and sort
 *   keys made on first use); the view is an array of indexes into it. Only the rows in view exist
 *   (virtual scrolling, fixed height `--row-h`): a pool of some 40 row elements.
 * - Filter (kept in #q=): words match name, target, address, group; `key=value` a label (`key=`
 *   any value); `state:down` (DOWN, DOWN n/m), `state:up` (UP, UP n/m), `state:going_down`,
 *   `state:going_up`, `state:changing`; `-term` excludes. State buttons keep the states pressed.
 *   Headers sort (again: reversed); by default by state, down first, then as configured.
 * - A row: state in HAProxy's words, "changed" for 30 s after this page saw it change, name and
 *   labels, address, time since the last change (browser clock), last check ("open in 0.2 ms"),
 *   uptime over 1 h and 24 h, and a chart of recent checks (round trip when open, full height
 *   when not, coloured by outcome) with a text alternative.
 * - Keys: `/` filter, Escape clears; rows are one Tab stop, moved with arrows, Page Up/Down,
 *   Home, End; the focused row's details show below.
 * - <body> gets `data-loaded-ms` (navigation start to first data rendered), `data-timing` (ms
 *   fetching, parsing, showing the last poll), `data-total`, `-up`, `-down`, `-shown`, `-polls`.
 */
const POLL_MS = 2000, TIMEOUT_MS = 15000, CHANGED_MS = 30000, OVERSCAN = 6, SLOTS = 60;
const RANK = { down: 0, going_up: 1, going_down: 2, up: 3 };
const LETTER = { o: 'open', c: 'closed', t: 'timed out', u: 'unreachable', r: 'resolve failed', e: 'checker error' };
const STATES = { down: [0, 1], going_up: [1], going_down: [2], up: [2, 3], changing: [1, 2] };
// The direction of a column's first click: 1 ascending, -1 descending.
const FIRST = { state: 1, name: 1, address: 1, since: 1, last: -1, hour: 1, day: 1, recent: -1 };

const $ = (id) => document.getElementById(id);
const body = document.body, scroller = $('scroller'), rowsEl = $('rows'), table = $('table');
const filterEl = $('filter'), head = table.querySelector('.head');
const rowH = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--row-h')) || 44;

let data = [];               // the targets, as /api/targets gave them
let rank = new Int8Array(0); // per target: RANK of its state
let cache = {};              // search and sort keys, made on first use: lazy()
let nameRank = null;         // natural order of the names, kept while they stay the same
let view = [];               // indexes into data, filtered and sorted
let version = 0;             // bumped when data or view change: rows fill again
const changed = new Map();   // name -> when this page saw its state change
let counts = { total: 0, up: 0, down: 0, going_up: 0, going_down: 0 };
let sortKey = 'state', sortDir = 1, terms = [];
const pressed = new Set();
let lastOk = 0, failing = null, failingSince = 0, polls = 0, sleeping = false;
let selected = null, cursor = 0, pool = [], scheduled = false;

// ---- formatting ----
const num = (n) => n.toLocaleString('en-US');
const pad = (n) => String(n).padStart(2, '0');
const when = (iso) => (iso ? Date.parse(iso) : NaN);
const local = (ms) => new Date(ms).toLocaleString();
function dur(ms) {
  const s = Math.max(0, Math.floor(ms / 1000)), m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (s < 60) return s + 's';
  if (m < 60) return m + 'm ' + pad(s % 60) + 's';
  if (h < 24) return h + 'h ' + pad(m % 60) + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}
const msText = (ms) => (ms < 0.1 ? ms.toFixed(2) : ms < 10 ? ms.toFixed(1) : Math.round(ms)) + ' ms';
function pct(v) {
  if (v == null || !isFinite(v)) return '—';
  if (v >= 1) return '100%';
  const p = v * 100, digits = p >= 99 ? 2 : 1, scale = 10 ** digits;
  return (Math.floor(p * scale) / scale).toFixed(digits) + '%'; // never rounded up to 100%
}
function lastText(c) {
  if (!c) return 'not checked yet';
  if (c.outcome === 'open' && c.rtt_ms != null) return 'open in ' + msText(c.rtt_ms);
  return c.outcome.replace('_', ' ');
}
function labelText(t, sep = '  ') {
  const parts = t.group ? ['group=' + t.group] : [];
  for (const k in t.labels || {}) parts.push(k + '=' + t.labels[k]);
  return parts.join(sep);
}
// Sorts "web2" before "web10", compared plainly.
const natural = (s) => s.toLowerCase().replace(/\d+/g, (d) => d.padStart(12, '0'));
function ranks(keyOf) {
  const keys = data.map(keyOf), order = data.map((_, i) => i), r = new Int32Array(data.length);
  order.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b));
  order.forEach((i, k) => { r[i] = k; });
  return r;
}

// ---- data ----
function lazy(key) {
  if (cache[key]) return cache[key];
  let made;
  if (key === 'hay') made = data.map((t) => [t.name, t.target, t.address, t.group].join('\n').toLowerCase());
  else if (key === 'labs') made = data.map((t) => ('\n' + labelText(t, '\n') + '\n').toLowerCase());
  else if (key === 'name') made = nameRank = nameRank || ranks((t) => natural(t.name));
  else made = ranks((t) => natural(t.address || t.target || ''));
  return (cache[key] = made);
}

function ingest(list) {
  const n = list.length, now = Date.now(), old = data;
  let before = (i) => old[i].state;
  if (n !== old.length || list.some((t, i) => t.name !== old[i].name)) {
    const states = new Map(old.map((t) => [t.name, t.state]));
    before = (i) => states.get(list[i].name);
    nameRank = null;
  }
  data = list;
  cache = {};
  rank = new Int8Array(n);
  const c = { total: n, up: 0, down: 0, going_up: 0, going_down: 0 };
  for (let i = 0; i < n; i++) {
    const t = list[i], r = RANK[t.state] ?? 3, was = before(i);
    rank[i] = r;
    c[t.up ? 'up' : 'down']++;
    if (r === 1) c.going_up++; else if (r === 2) c.going_down++;
    if (was !== undefined && was !== t.state) changed.set(t.name, now);
  }
  for (const [name, at] of changed) if (now - at > CHANGED_MS) changed.delete(name);
  counts = c;
}

function parseFilter(text) {
  const out = [];
  for (let w of text.toLowerCase().split(/\s+/)) {
    if (!w) continue;
    const neg = w.length > 1 && w[0] === '-';
    if (neg) w = w.slice(1);
    const m = /^state:(.*)$/.exec(w), eq = w.indexOf('=');
    let test;
    if (m) {
      const ranks = STATES[m[1].replace(/-/g, '_')] || [];
      test = (i) => ranks.includes(rank[i]);
    } else if (eq > 0) {
      const needle = '\n' + w + (eq === w.length - 1 ? '' : '\n');
      test = (i) => lazy('labs')[i].includes(needle);
    } else test = (i) => lazy('hay')[i].includes(w);
    out.push({ neg, test });
  }
  return out;
}

function sortValue(i) {
  const t = data[i], c = t.last_check, o = (t.history && t.history.outcomes) || '';
  switch (sortKey) {
    case 'state': return rank[i];
    case 'name': case 'address': return lazy(sortKey)[i];
    case 'since': return -when(t.last_change);
    case 'last': return !c ? NaN : c.outcome === 'open' ? c.rtt_ms || 0 : 1e9 + 'closed timed_out unreachable resolve_failed'.indexOf(c.outcome);
    case 'hour': case 'day': return (t.uptime && t.uptime[sortKey]) ?? NaN;
    default: return o.length ? o.replace(/o/g, '').length / o.length : NaN;
  }
}

function refilter() {
  const n = data.length, out = [], key = new Float64Array(n), dir = sortDir;
  outer: for (let i = 0; i < n; i++) {
    if (pressed.size && !pressed.has(data[i].state)) continue;
    for (const term of terms) if (term.test(i) === term.neg) continue outer;
    out.push(i);
    key[i] = sortValue(i);
  }
  out.sort((a, b) => {
    const x = key[a], y = key[b];
    if (x === y) return a - b; // then in the configured order
    if (x !== x) return 1; // no value: last, whichever the direction
    if (y !== y) return -1;
    return (x - y) * dir;
  });
  view = out;
  version++;
  const at = selected == null ? -1 : out.findIndex((i) => data[i].name === selected);
  cursor = Math.max(at, 0);
}

// ---- rows ----
function el(tag, cls, parent, svg) {
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  if (cls) e.setAttribute('class', cls);
  if (parent) parent.appendChild(e);
  return e;
}
function makeRow() {
  const row = el('div', 'row'), p = {};
  row.setAttribute('role', 'row');
  row.tabIndex = -1;
  row.hidden = true;
  // A cell: a line, and one in small print.
  const cell = (cls, a, b) => {
    const c = el('div', 'cell ' + cls, row);
    c.setAttribute('role', 'cell');
    p[a] = el('span', '', c);
    if (b) p[b] = el('span', 'l2', c);
    return c;
  };
  cell('', 'state', 'flag');
  p.st = el('span', 'st', p.state);
  p.chg = el('span', 'changed', p.flag);
  p.chg.textContent = 'changed';
  cell('', 'name', 'labels').firstChild.className = 'name';
  cell('', 'addr', 'target');
  cell('since', 'since', 'changes');
  cell('last', 'last', 'checked');
  cell('num', 'hour');
  cell('num', 'day');
  const svg = (p.svg = el('svg', 'chart', cell('', 'chart'), true));
  for (const [k, v] of [['viewBox', '0 0 120 26'], ['preserveAspectRatio', 'none'], ['role', 'img']]) svg.setAttribute(k, v);
  p.title = el('title', '', svg, true);
  const base = el('rect', 'base', svg, true);
  for (const [k, v] of [['y', 25], ['width', 120], ['height', 1]]) base.setAttribute(k, v);
  p.paths = {};
  for (const k of 'octue') p.paths[k] = el('path', k, svg, true);
  row._parts = p; row._p = -1;
  rowsEl.appendChild(row);
  return row;
}

function fillChart(p, t) {
  const h = t.history || {}, out = (h.outcomes || '').slice(-SLOTS), rtt = (h.rtt_us || []).slice(-out.length);
  const n = out.length, tally = {}, d = { o: '', c: '', t: '', u: '', e: '' };
  let max = 0, min = Infinity;
  for (let k = 0; k < n; k++) {
    tally[out[k]] = (tally[out[k]] || 0) + 1;
    if (out[k] === 'o') { max = Math.max(max, rtt[k] || 0); min = Math.min(min, rtt[k] || 0); }
  }
  for (let k = 0; k < n; k++) {
    const height = out[k] === 'o' ? 3 + Math.round((21 * (rtt[k] || 0)) / (max || 1)) : 25;
    d['octu'.includes(out[k]) ? out[k] : 'e'] += 'M' + (SLOTS - n + k) * 2 + ' ' + (25 - height) + 'h1.6v' + height + 'h-1.6z';
  }
  for (const k in d) p.paths[k].setAttribute('d', d[k] || 'M0 0');
  let label = 'no checks yet';
  if (n) {
    label = 'last ' + n + ' checks: ' + Object.keys(tally).map((ch) => tally[ch] + ' ' + (LETTER[ch] || ch)).join(', ');
    if (tally.o) label += '; round trip ' + msText(min / 1000) + ' to ' + msText(max / 1000);
  }
  p.svg.setAttribute('aria-label', label);
  p.title.textContent = label;
}

function fillTimes(row, now) {
  const p = row._parts, t = data[view[row._p]], change = when(t.last_change), checked = when(t.last_check && t.last_check.at);
  p.since.textContent = isNaN(change) ? '—' : dur(now - change);
  p.since.title = isNaN(change) ? 'no change since the service started' : 'changed at ' + local(change);
  p.checked.textContent = isNaN(checked) ? '' : 'checked ' + dur(now - checked) + ' ago';
  p.chg.hidden = !(now - changed.get(t.name) <= CHANGED_MS);
}

function fill(row, now) {
  const p = row._parts, t = data[view[row._p]], c = t.last_check, u = t.uptime || {}, labels = labelText(t);
  row.dataset.name = t.name;
  row.dataset.state = t.state;
  row.classList.toggle('is-down', !t.up);
  p.st.textContent = t.health;
  p.st.className = 'st ' + t.state;
  p.name.textContent = p.name.title = t.name;
  p.labels.textContent = p.labels.title = labels;
  p.addr.textContent = t.address || '—';
  p.target.textContent = t.target !== t.address && t.target !== t.name ? t.target : '';
  p.changes.textContent = t.transitions ? t.transitions + (t.transitions === 1 ? ' change' : ' changes') : '';
  p.last.textContent = lastText(c);
  p.last.title = c ? c.reason + ' (' + local(when(c.at)) + ')' : '';
  p.last.className = c && c.outcome !== 'open' ? 'bad' : '';
  for (const k of ['hour', 'day']) {
    p[k].textContent = pct(u[k]);
    p[k].className = u[k] != null && u[k] < 0.99 ? 'bad' : '';
  }
  fillChart(p, t);
  fillTimes(row, now);
}

function render() {
  scheduled = false;
  const size = Math.ceil(scroller.clientHeight / rowH) + 2 * OVERSCAN + 1;
  if (size !== pool.length) {
    if (rowsEl.contains(document.activeElement)) scroller.focus({ preventScroll: true });
    for (const row of pool) row.remove();
    pool = Array.from({ length: size }, makeRow);
  }
  const n = view.length, now = Date.now(), active = document.activeElement;
  rowsEl.style.height = n * rowH + 'px';
  table.setAttribute('aria-rowcount', n + 1);
  $('empty').hidden = n > 0 || !data.length;
  const top = scroller.scrollTop, height = scroller.clientHeight - head.offsetHeight;
  const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
  const last = Math.min(n, Math.ceil((top + height) / rowH) + OVERSCAN, first + size);
  let tabbed = null;
  pool.forEach((row, k) => {
    // The slot shows the position in [first, last) congruent to k: scrolling refills few.
    const p = first + ((k - (first % size) + size) % size);
    if (p >= last) { row.hidden = true; row._p = -1; return; }
    if (row === active && row._p !== p) scroller.focus({ preventScroll: true });
    if (row._p !== p || row._v !== version) {
      row._p = p; row._v = version;
      fill(row, now);
      row.style.transform = 'translateY(' + p * rowH + 'px)';
      row.setAttribute('aria-rowindex', p + 2);
    }
    row.hidden = false;
    row.tabIndex = -1;
    row.classList.toggle('sel', p === cursor && selected != null);
    if (p === cursor || (!tabbed && p === first)) tabbed = row;
  });
  if (tabbed) tabbed.tabIndex = 0;
}
const schedule = () => { if (!scheduled) { scheduled = true; requestAnimationFrame(render); } };

function tick() {
  const now = Date.now(), ago = dur(now - lastOk);
  for (const row of pool) if (row._p >= 0) fillTimes(row, now);
  $('updated').textContent = !lastOk ? (failing ? 'no answer from the service yet' : 'loading…')
    : failing ? 'not updated for ' + ago : 'updated ' + ago + ' ago';
}

// ---- summary, details, problem ----
function summarize() {
  const c = counts, changing = c.going_up + c.going_down;
  $('summary').textContent = num(c.total) + (c.total === 1 ? ' target · ' : ' targets · ') + num(c.up) + ' up · ' +
    num(c.down) + ' down' + (changing ? ' · ' + num(changing) + ' changing state' : '');
  const shown = { down: c.down - c.going_up, going_up: c.going_up, going_down: c.going_down, up: c.up - c.going_down };
  for (const b of $('states').children) {
    b.lastElementChild.textContent = num(shown[b.dataset.state]);
    b.setAttribute('aria-pressed', pressed.has(b.dataset.state));
  }
  $('shown').textContent = view.length !== c.total ? 'showing ' + num(view.length) + ' of ' + num(c.total) : '';
  Object.assign(body.dataset, { total: c.total, up: c.up, down: c.down, shown: view.length, polls });
}

function showDetail() {
  const t = data[view[cursor]];
  if (!t || t.name !== selected) return;
  const now = Date.now(), c = t.last_check, u = t.uptime || {}, change = when(t.last_change);
  const box = document.createDocumentFragment(), badge = 'badge/' + encodeURIComponent(t.name);
  el('h2', '', box).textContent = t.name;
  el('span', 'st ' + t.state, box).textContent = t.health;
  box.append(' badges: ');
  for (const [href, text] of [[badge + '.svg', 'state'], [badge + '/uptime.svg', 'uptime']]) {
    const a = el('a', '', box);
    a.href = href; a.textContent = text;
    box.append(' ');
  }
  const dl = el('dl', '', box);
  for (const [k, v] of [
    ['target', t.target], ['address', t.address || '—'], ['group', t.group || '—'], ['labels', labelText(t) || '—'],
    ['rise / fall', t.rise + ' / ' + t.fall], ['checks', num(t.checks || 0)], ['state changes', num(t.transitions || 0)],
    ['last change', isNaN(change) ? 'none since the service started' : local(change) + ' (' + dur(now - change) + ' ago)'],
    ['last check', c ? c.reason + ', ' + dur(now - when(c.at)) + ' ago' : 'not checked yet'],
    ['uptime', pct(u.hour) + ' over 1 h, ' + pct(u.day) + ' over 24 h'],
  ]) {
    const div = el('div', '', dl);
    el('dt', '', div).textContent = k;
    el('dd', '', div).textContent = v;
  }
  $('detail').replaceChildren(box);
}

function setProblem(message) {
  const box = $('problem');
  box.hidden = message == null;
  if (message == null) { failing = null; delete body.dataset.stale; return; }
  if (!failing) failingSince = Date.now();
  failing = message;
  body.dataset.stale = '1';
  const at = (ms) => new Date(ms).toLocaleTimeString();
  box.textContent = 'The service is not answering (' + message + ') since ' + at(failingSince) + '. ' +
    (lastOk ? 'Showing what it said at ' + at(lastOk) + '; ' : '') + 'trying again every 2 s.';
}

// ---- polling ----
async function poll() {
  const started = performance.now(), ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const res = await fetch('api/targets', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error('HTTP ' + res.status + ' ' + res.statusText);
    const text = await res.text(), got = performance.now(), list = JSON.parse(text), parsed = performance.now();
    if (!Array.isArray(list)) throw new Error('the answer is not a list of targets');
    ingest(list);
    lastOk = Date.now();
    polls++;
    setProblem(null);
    refilter();
    render();
    summarize();
    showDetail();
    const done = performance.now(), r = Math.round;
    body.dataset.timing = [got - started, parsed - got, done - parsed].map(r).join(' ');
    body.dataset.loadedMs ||= r(done);
  } catch (e) {
    setProblem(e.name === 'AbortError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : e.message || String(e));
  } finally {
    clearTimeout(timer);
    tick();
    if (document.hidden) sleeping = true;
    else setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
  }
}
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && sleeping) { sleeping = false; poll(); }
});

// ---- interaction ----
function readHash() {
  const q = new URLSearchParams(location.hash.slice(1)), sort = q.get('sort') || 'state', key = sort.replace(/^-/, '');
  filterEl.value = q.get('q') || '';
  pressed.clear();
  for (const s of (q.get('states') || '').split(',')) if (s in RANK) pressed.add(s);
  if (key in FIRST) { sortKey = key; sortDir = sort[0] === '-' ? -1 : 1; }
  terms = parseFilter(filterEl.value);
}
function changedView(toTop) {
  refilter();
  if (toTop) scroller.scrollTop = 0;
  for (const h of head.children) {
    if (h.dataset.key === sortKey) h.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending');
    else h.removeAttribute('aria-sort');
  }
  render();
  summarize();
  const q = new URLSearchParams(), text = filterEl.value.trim();
  if (text) q.set('q', text);
  if (pressed.size) q.set('states', [...pressed].join(','));
  if (sortKey !== 'state' || sortDir !== 1) q.set('sort', (sortDir < 0 ? '-' : '') + sortKey);
  history.replaceState(null, '', q.size ? '#' + q : location.pathname + location.search);
}
function select(p) {
  cursor = p;
  selected = data[view[p]].name;
  render();
  showDetail();
}
function moveTo(p) {
  if (!view.length) return;
  p = Math.max(0, Math.min(view.length - 1, p));
  const visible = scroller.clientHeight - head.offsetHeight;
  if (p * rowH < scroller.scrollTop) scroller.scrollTop = p * rowH;
  else if ((p + 1) * rowH > scroller.scrollTop + visible) scroller.scrollTop = (p + 1) * rowH - visible;
  select(p);
  const row = pool.find((r) => r._p === p);
  if (row) row.focus({ preventScroll: true });
}

filterEl.addEventListener('input', () => {
  terms = parseFilter(filterEl.value);
  changedView(true);
});
filterEl.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && filterEl.value) { filterEl.value = ''; filterEl.dispatchEvent(new Event('input')); }
  else if (e.key === 'ArrowDown') { e.preventDefault(); moveTo(0); }
});
$('states').addEventListener('click', (e) => {
  const s = e.target.closest('button')?.dataset.state;
  if (!s) return;
  if (!pressed.delete(s)) pressed.add(s);
  changedView(true);
});
head.addEventListener('click', (e) => {
  const key = e.target.closest('button') && e.target.closest('[data-key]')?.dataset.key;
  if (!key) return;
  if (key === sortKey) sortDir = -sortDir;
  else { sortKey = key; sortDir = FIRST[key]; }
  changedView(false);
});
rowsEl.addEventListener('keydown', (e) => {
  const page = Math.max(1, Math.floor((scroller.clientHeight - head.offsetHeight) / rowH) - 1);
  const to = { ArrowDown: cursor + 1, ArrowUp: cursor - 1, PageDown: cursor + page, PageUp: cursor - page,
    Home: 0, End: view.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  if (to < 0) filterEl.focus();
  else moveTo(to);
});
rowsEl.addEventListener('focusin', (e) => {
  const p = e.target.closest('.row')?._p;
  if (p >= 0 && (p !== cursor || selected == null)) select(p);
});
document.addEventListener('keydown', (e) => {
  if (e.key === '/' && !e.target.closest('input, textarea, select, [contenteditable]') && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    filterEl.focus();
    filterEl.select();
  }
});
scroller.addEventListener('scroll', schedule, { passive: true });
addEventListener('resize', schedule);
addEventListener('hashchange', () => { readHash(); changedView(true); });

readHash();
changedView(false);
setInterval(tick, 1000);
poll();
