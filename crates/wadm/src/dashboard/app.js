// The wadm dashboard: reads and writes through the HTTP API (/api/v1), kept live by its event
// stream. Everything shown comes from the API; values are set as text, never as markup.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { lattice: null, selected: null, events: null, timer: null };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(type) {
  return el('span', { class: 'badge status-' + (type || 'undeployed') }, type || 'undeployed');
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  const headers = Object.assign({}, opts.headers || {});
  const token = $('token').value.trim();
  if (token) headers.Authorization = 'Bearer ' + token;
  opts.headers = headers;
  let response;
  try {
    response = await fetch('/api/v1' + path, opts);
  } catch (e) {
    return { ok: false, status: 0, body: { result: 'error', message: 'wadm is unreachable: ' + e } };
  }
  let body;
  try {
    body = await response.json();
  } catch (_) {
    body = { result: 'error', message: 'HTTP ' + response.status };
  }
  return { ok: response.ok, status: response.status, body };
}

const latticePath = () => '/lattices/' + encodeURIComponent(state.lattice);
const appPath = (name) => latticePath() + '/apps/' + encodeURIComponent(name);

function fill(tableId, rows, emptyId) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren(...rows);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}

async function refreshApps() {
  const { ok, body } = await api(latticePath() + '/apps');
  if (!ok) return;
  const models = (body.models || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  fill('apps', models.map((m) => el('tr', {
    class: 'app' + (m.name === state.selected ? ' selected' : ''),
    data: { app: m.name, status: m.status || 'undeployed' },
    on: { click: () => select(m.name) },
  },
  el('td', {}, m.name),
  el('td', {}, m.deployed_version || '—'),
  el('td', {}, m.version || ''),
  el('td', {}, badge(m.status)),
  el('td', {}, m.status_message || ''))), 'apps-empty');
}

function workloads(host) {
  return [...(host.components || []), ...(host.providers || [])];
}

function formatUptime(seconds) {
  if (seconds === undefined || seconds === null) return '';
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

async function refreshHosts() {
  const { ok, body } = await api(latticePath() + '/hosts');
  if (!ok) return;
  fill('hosts', (body.hosts || []).map((h) => el('tr', { data: { host: h.id } },
    el('td', {}, h.friendly_name || ''),
    el('td', { title: h.id }, h.id.slice(0, 12) + '…'),
    el('td', {}, Object.entries(h.labels || {})
      .filter(([k]) => !k.startsWith('hostcore.'))
      .map(([k, v]) => el('span', { class: 'label' }, `${k}=${v}`))),
    el('td', {}, formatUptime(h.uptime_seconds)),
    el('td', {}, h.version || ''),
    el('td', {}, workloads(h).map((w) => el('div', { data: { workload: w.id } },
      `${w.id} ×${w.instances}`, w.app ? el('span', { class: 'muted' }, ` (${w.app})`) : null))))), 'hosts-empty');
}

async function refreshDetail() {
  const name = state.selected;
  if (!name) return;
  const [status, placement, versions] = await Promise.all([
    api(appPath(name) + '/status'),
    api(latticePath() + '/hosts?app=' + encodeURIComponent(name)),
    api(appPath(name) + '/versions'),
  ]);
  if (name !== state.selected) return;
  const scalers = (status.body.status && status.body.status.scalers) || [];
  fill('scalers', scalers.map((s) => el('tr', { data: { scaler: s.id } },
    el('td', {}, s.name || s.id), el('td', {}, s.kind || ''),
    el('td', {}, badge(s.status && s.status.type)), el('td', {}, (s.status && s.status.message) || ''))));
  const rows = [];
  for (const h of placement.body.hosts || []) {
    for (const w of workloads(h)) {
      rows.push(el('tr', { data: { host: h.id, workload: w.id } },
        el('td', { title: h.id }, h.friendly_name || h.id), el('td', {}, w.id), el('td', {}, String(w.instances))));
    }
  }
  fill('placement', rows, 'placement-empty');
  const list = versions.body.versions || [];
  fill('versions', list.map((v, i) => el('tr', { data: { version: v.version } },
    el('td', {}, v.version), el('td', {}, v.deployed ? 'deployed' : ''),
    el('td', {}, i > 0 ? el('button', { type: 'button', on: { click: () => showDiff(name, list[i - 1].version, v.version) } }, 'diff with ' + list[i - 1].version) : ''))));
}

async function manifestLines(name, version) {
  const { body } = await api(appPath(name) + '?version=' + encodeURIComponent(version));
  return JSON.stringify(body.manifest || {}, null, 2).split('\n');
}

// Line diff by longest common subsequence: '-' only in `a`, '+' only in `b`, ' ' in both.
function diffLines(a, b) {
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(['+', b[j]]); j++; }
    else { out.push(['-', a[i]]); i++; }
  }
  return out;
}

async function showDiff(name, from, to) {
  const [a, b] = await Promise.all([manifestLines(name, from), manifestLines(name, to)]);
  const pre = $('diff');
  pre.replaceChildren(el('div', { class: 'muted' }, `${from} → ${to}`),
    ...diffLines(a, b).map(([sign, line]) => el('div', { class: sign === '+' ? 'add' : sign === '-' ? 'del' : '' }, sign + ' ' + line)));
  pre.hidden = false;
}

function select(name) {
  state.selected = name;
  $('detail-panel').hidden = false;
  $('detail-name').textContent = name;
  $('detail-result').textContent = '';
  $('diff').hidden = true;
  for (const row of $('apps').querySelectorAll('tbody tr')) row.classList.toggle('selected', row.dataset.app === name);
  refreshDetail();
}

function refreshAll() {
  refreshApps();
  refreshHosts();
  refreshDetail();
}

// Many events arrive together during a deploy: refresh once they pause.
function scheduleRefresh() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refreshAll, 150);
}

function follow() {
  if (state.events) state.events.close();
  const live = $('live');
  const source = new EventSource('/api/v1' + latticePath() + '/events');
  source.onopen = () => { live.textContent = 'live'; live.className = 'badge live'; scheduleRefresh(); };
  source.onerror = () => { live.textContent = 'reconnecting'; live.className = 'badge down'; };
  source.addEventListener('status', scheduleRefresh);
  source.addEventListener('placement', scheduleRefresh);
  state.events = source;
}

function showResult(target, ok, message) {
  $(target).replaceChildren(el('div', { class: ok ? 'ok' : 'error' }, message));
}

async function deployManifest() {
  const text = $('manifest').value;
  if (!text.trim()) return showResult('deploy-result', false, 'Paste a manifest first.');
  const type = text.trim().startsWith('{') ? 'application/json' : 'application/yaml';
  const put = await api(latticePath() + '/apps', { method: 'POST', headers: { 'Content-Type': type }, body: text });
  if (!put.ok) return showResult('deploy-result', false, put.body.message || 'refused');
  const name = put.body.name, version = put.body.current_version;
  const deployed = await api(appPath(name) + '/deploy', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ version }),
  });
  if (!deployed.ok) return showResult('deploy-result', false, deployed.body.message || 'deploy refused');
  showResult('deploy-result', true, `${name} ${version}: ${deployed.body.message || 'deploying'}`);
  select(name);
  scheduleRefresh();
}

async function appAction(action, body) {
  const name = state.selected;
  if (!name) return;
  const reply = await api(appPath(name) + '/' + action, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  showResult('detail-result', reply.ok, reply.body.message || (reply.ok ? 'done' : 'refused'));
  scheduleRefresh();
}

async function start() {
  const wanted = new URLSearchParams(location.search).get('lattice');
  const { body } = await api('/lattices');
  const names = (body.lattices || []).map((l) => l.name);
  if (wanted && !names.includes(wanted)) names.push(wanted);
  if (!names.length) names.push('default');
  const picker = $('lattice');
  picker.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
  state.lattice = wanted || names[0];
  picker.value = state.lattice;
  picker.addEventListener('change', () => {
    state.lattice = picker.value;
    state.selected = null;
    $('detail-panel').hidden = true;
    follow();
    refreshAll();
  });
  $('token').value = sessionStorage.getItem('wadm-token') || '';
  $('token').addEventListener('change', () => sessionStorage.setItem('wadm-token', $('token').value.trim()));
  $('deploy').addEventListener('click', deployManifest);
  $('deploy-latest').addEventListener('click', () => appAction('deploy', ''));
  $('undeploy').addEventListener('click', () => appAction('undeploy', ''));
  follow();
  refreshAll();
  // Hosts that die silently leave no event: look again now and then (uptimes move too).
  setInterval(refreshAll, 5000);
}

start();
