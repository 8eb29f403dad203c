// The admin page: one self-contained HTML page, no build step. It holds no data: its login form
// takes an admin API key (or an admin JWT), keeps it in sessionStorage (gone with the tab), and
// sends it as a Bearer header to /admin/api/... (http.ts). Everything shown comes from there and
// is written with textContent, never as HTML: ids, queries and messages are client-sent.
// Its Content-Security-Policy allows only this page's own script and style (by hash) and
// requests to its own origin.
import { createHash } from 'node:crypto';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { display: flex; gap: 1em; align-items: center; padding: .6em 1.2em; background: #1d2430; color: #fff; }
header h1 { font-size: 1.1em; margin: 0; flex: 1; }
main { padding: 1em 1.2em; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: .6em 1em 1em; margin-bottom: 1em; }
h2 { font-size: 1em; margin: .4em 0 .6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid #eef0f3; vertical-align: top; }
th { font-weight: 600; color: #555; }
code, pre { font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
pre { max-height: 24em; overflow: auto; background: #f6f7f9; padding: .5em; }
.error { color: #a4161a; font-weight: 600; }
.muted { color: #777; }
.hidden { display: none; }
form { display: flex; gap: .5em; flex-wrap: wrap; align-items: center; }
input[type=text], input[type=password] { padding: .3em .5em; min-width: 16em; }
button { padding: .3em .8em; cursor: pointer; }
`;

const SCRIPT = `
'use strict';
const TOKEN_KEY = 'tributary-admin-token';
const $ = (id) => document.getElementById(id);
let refreshTimer = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, init) {
  const response = await fetch('/admin/api' + path, Object.assign({}, init, {
    headers: Object.assign({ authorization: 'Bearer ' + token() }, init && init.body ? { 'content-type': 'application/json' } : {}),
  }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || ('HTTP ' + response.status));
    error.status = response.status;
    throw error;
  }
  return body;
}

/** A table row of text cells (or nodes). */
function row(cells, header) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement(header ? 'th' : 'td');
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? '' : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, headers, rows, empty) {
  const table = $(id);
  table.replaceChildren(row(headers, true));
  if (rows.length === 0) table.appendChild(row([empty]));
  for (const cells of rows) table.appendChild(row(cells));
}

function time(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, 'Z') : ''; }

function text(tag, value, className) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (className) node.className = className;
  return node;
}

function showError(message) { $('error').textContent = message; }

async function refresh() {
  try {
    const [me, sessions, collections, writes, rules, keys] = await Promise.all([
      api('/me'), api('/sessions'), api('/collections'), api('/writes'), api('/rules'), api('/keys'),
    ]);
    showError('');
    $('who').textContent = me.id + ' (' + me.provider + ')';
    $('login').classList.add('hidden');
    $('dashboard').classList.remove('hidden');
    fill('sessions', ['user', 'provider', 'connected', 'address', 'subscriptions (collection, kind, state, queries)', 'bootstraps'],
      sessions.sessions.map((s) => {
        const list = document.createElement('div');
        for (const sub of s.subscriptions) list.appendChild(text('div', sub.collection + ' · ' + sub.kind + ' · ' + sub.state + ' · ' + (sub.queries === null ? 'everything' : sub.queries), 'subscription'));
        const boots = s.bootstraps.map((b) => b.collection + ': ' + b.state + ' (' + b.documents + (b.estimatedTotal === null ? '' : '/' + b.estimatedTotal) + ')').join(', ');
        return [s.userId, s.provider, time(s.connectedAt), s.remoteAddress, list, boots];
      }), 'no connected clients');
    $('sessions-total').textContent = sessions.total > sessions.sessions.length ? ('the newest ' + sessions.sessions.length + ' of ' + sessions.total) : '';
    fill('collections', ['collection', 'documents', 'live streams', 'change feed position / horizon', 'lag (sequences)', 'lag (seconds)'],
      collections.collections.map((c) => [c.name, c.documents, c.liveStreams, c.changeFeed.position + ' / ' + c.changeFeed.horizon, c.changeFeed.sequences, c.changeFeed.seconds.toFixed(3)]),
      'no collections');
    fill('writes', ['at', 'collection', 'document', 'code', 'reason', 'field', 'user', 'via', 'message'],
      writes.refused.map((w) => [time(w.at), w.collection, w.documentId, w.code, w.reason, w.field, w.userId, w.via, w.message]),
      'no refused writes');
    $('rules-path').textContent = rules.path + ' (' + rules.files.join(', ') + '), loaded ' + time(rules.loadedAt);
    const reload = rules.lastReload;
    $('rules-reload').textContent = reload === null ? 'not reloaded since start' : ('last reload ' + time(reload.at) + ': ' + (reload.ok ? 'applied' : 'refused: ' + reload.error));
    $('rules-reload').className = reload && !reload.ok ? 'error' : 'muted';
    $('rules-roles').textContent = JSON.stringify(rules.roles, null, 2);
    fill('keys', ['id', 'name', 'user', 'admin', 'created', 'revoked', ''],
      keys.keys.map((k) => {
        let action = '';
        if (!k.revokedAt) {
          action = text('button', 'Revoke');
          action.dataset.keyId = k.id;
          action.addEventListener('click', () => revoke(k.id));
        }
        return [k.id, k.name, k.userId, k.admin ? 'yes' : 'no', time(Date.parse(k.createdAt)), k.revokedAt ? time(Date.parse(k.revokedAt)) : '', action];
      }), 'no API keys');
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      logOut();
      showError(error.message);
    } else {
      showError('could not load: ' + error.message);
    }
  }
}

async function revoke(id) {
  try {
    await api('/keys/' + encodeURIComponent(id), { method: 'DELETE' });
    await refresh();
  } catch (error) { showError('revoking failed: ' + error.message); }
}

function logOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(refreshTimer);
  refreshTimer = null;
  $('dashboard').classList.add('hidden');
  $('login').classList.remove('hidden');
  for (const id of ['sessions', 'collections', 'writes', 'keys']) $(id).replaceChildren();
  for (const id of ['rules-roles', 'rules-path', 'rules-reload', 'new-key', 'who', 'sessions-total']) $(id).textContent = '';
}

function start() {
  refresh();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(refresh, 5000);
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token').value = '';
  start();
});
$('logout').addEventListener('click', () => { logOut(); showError(''); });
$('refresh').addEventListener('click', refresh);
$('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { name: $('key-name').value, admin: $('key-admin').checked };
  if ($('key-user').value.trim()) body.userId = $('key-user').value.trim();
  try {
    const created = await api('/keys', { method: 'POST', body: JSON.stringify(body) });
    $('new-key').textContent = 'New key ' + created.info.id + ' (shown once, copy it now): ' + created.key;
    $('key-form').reset();
    await refresh();
  } catch (error) { showError('creating the key failed: ' + error.message); }
});
if (token()) start();
`;

const BODY = `
<header><h1>Tributary admin</h1><span id="who"></span><button id="refresh" type="button">Refresh</button><button id="logout" type="button">Log out</button></header>
<main>
<p id="error" class="error" role="alert"></p>
<section id="login">
  <h2>Log in</h2>
  <form id="login-form">
    <label>Admin API key or token <input id="token" type="password" autocomplete="off" required></label>
    <button type="submit">Log in</button>
  </form>
  <p class="muted">An API key created with the admin flag, or a JWT with the gateway's admin claim. It is kept in this tab only.</p>
</section>
<div id="dashboard" class="hidden">
  <section><h2>Connected clients</h2><p id="sessions-total" class="muted"></p><table id="sessions"></table></section>
  <section><h2>Collections</h2><table id="collections"></table></section>
  <section><h2>Recent refused writes</h2><table id="writes"></table></section>
  <section><h2>Rules</h2><p id="rules-path"></p><p id="rules-reload"></p><pre id="rules-roles"></pre></section>
  <section>
    <h2>API keys</h2>
    <form id="key-form">
      <input id="key-name" type="text" placeholder="name" maxlength="100" required>
      <input id="key-user" type="text" placeholder="user id (optional)" maxlength="200">
      <label><input id="key-admin" type="checkbox"> admin</label>
      <button type="submit">Create key</button>
    </form>
    <p><code id="new-key"></code></p>
    <table id="keys"></table>
  </section>
</div>
</main>`;

export const ADMIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tributary admin</title><style>${STYLE}</style></head>
<body>${BODY}
<script>${SCRIPT}</script>
</body></html>`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

export const ADMIN_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');
