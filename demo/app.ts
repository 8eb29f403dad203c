// The demo app in the browser: shared task lists on the Tributary SDK, plain DOM. Every tab of
// the page opens the same IndexedDB database (Dexie storage, multiInstance): one tab syncs for
// all. Logging in makes an unsigned dev token for a name (the demo gateway accepts them), so two
// people are just two names.
import type { RxDocument } from 'rxdb';
import { getRxStorageDexie } from 'rxdb/plugins/storage-dexie';
import { openTributary, type AuthenticatedUser, type LogLevel, type TributaryClient } from '../client-sdk/index.ts';

declare global {
  interface Window {
    /** Set by demo/server.ts in the page. */
    TRIBUTARY_DEMO: { gatewayHttpUrl: string; gatewayWsUrl: string; schema: string };
  }
}

interface Project {
  id: string;
  ownerId: string;
  name: string;
  archived: boolean;
  createdAt: string;
}

interface Task {
  id: string;
  projectId?: string;
  ownerId: string;
  title: string;
  status: 'TODO' | 'IN_PROGRESS' | 'BLOCKED' | 'DONE';
  priority: number;
  tags: string[];
  assigneeIds?: string[];
  minutesLogged?: number;
}

const config = window.TRIBUTARY_DEMO;
// (config.gatewayHttpUrl: GraphiQL, for a look at the data.)
const USER_KEY = 'tributary-demo-user';
const STATUSES: Task['status'][] = ['TODO', 'IN_PROGRESS', 'BLOCKED', 'DONE'];
const root = document.getElementById('app')!;

/** A small element builder: el('button', { class: 'plus', onclick }, '+15'). */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, unknown> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = String(value);
    else if (key.startsWith('data-')) node.setAttribute(key, String(value));
    else (node as unknown as Record<string, unknown>)[key] = value;
  }
  node.append(...children);
  return node;
}

/** Enter commits a text field and leaves it, so what syncs in (or a refusal's revert) shows. */
function commitOnEnter(input: HTMLInputElement): HTMLInputElement {
  input.addEventListener('keydown', (event) => event.key === 'Enter' && input.blur());
  return input;
}

/** Sets an input's value unless the user is typing in it. */
function setValue(input: HTMLInputElement | HTMLSelectElement, value: string): void {
  if (document.activeElement !== input && input.value !== value) input.value = value;
}

const newId = () => `${Date.now().toString(36)}-${Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('')}`;

/** An unsigned JWT for `name`: the demo gateway runs with TRIBUTARY_DEV_TOKENS=true. */
function devToken(name: string): string {
  const part = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: name, iat: Math.floor(Date.now() / 1000) })}.`;
}

function showLogin(): void {
  const name = el('input', { id: 'name', placeholder: 'your name, e.g. alice', autocomplete: 'off', required: true });
  const error = el('p', { class: 'muted', id: 'login-error' });
  const form = el('form', {}, name, el('button', { type: 'submit' }, 'Log in'), error);
  form.onsubmit = async (event) => {
    event.preventDefault();
    const id = name.value.trim().toLowerCase();
    if (!/^[a-z0-9_-]{1,32}$/.test(id)) {
      error.textContent = 'A name is 1 to 32 letters, digits, "-" or "_".';
      return;
    }
    try {
      // A dev token needs no round trip: the gateway checks it when the socket connects.
      const user: AuthenticatedUser = { id, provider: 'dev', token: devToken(id), expiresAt: null };
      // Kept for the next visit: the app opens offline too, as this user.
      localStorage.setItem(USER_KEY, JSON.stringify(user));
      root.replaceChildren();
      await showApp(user);
    } catch (e) {
      error.textContent = `Log-in failed: ${(e as Error).message}`;
    }
  };
  root.replaceChildren(el('div', { id: 'login' }, el('h2', {}, 'Tributary demo'), el('p', { class: 'muted' }, 'Pick any name. Open a second window as someone else to share lists.'), form));
  name.focus();
}

async function showApp(user: AuthenticatedUser): Promise<void> {
  const logLevel = (new URLSearchParams(location.search).get('log') ?? 'info') as LogLevel;
  const client = await openTributary({
    url: config.gatewayWsUrl,
    schema: config.schema,
    storage: getRxStorageDexie(),
    databaseName: 'tributary-demo',
    user,
    multiInstance: true,
    logLevel,
    retry: { maxDelayMs: 3_000 },
    retryTimeMs: 1_000,
    flexibleSync: { initialSubscriptions: { update: (m) => void m.add('projects', 'TRUEPREDICATE', { name: 'lists' }) } },
  });
  buildApp(client, user);
}

function buildApp(client: TributaryClient, user: AuthenticatedUser): void {
  const projects = client.collections.projects!;
  const tasks = client.collections.tasks!;
  // The list on screen, kept for the next visit and the other tabs' first look.
  const SELECTED_KEY = `tributary-demo-selected-${user.id}`;
  let selected: string | null = localStorage.getItem(SELECTED_KEY);
  let allProjects: Project[] = [];

  // Header: who, the socket, the writes not yet acknowledged, which tab syncs.
  const connection = el('span', { id: 'connection', class: 'chip' });
  const pending = el('span', { id: 'pending', class: 'chip' });
  const tabRole = el('span', { id: 'tab-role', class: 'chip' });
  const logOut = el('button', { id: 'log-out' }, 'Log out');
  logOut.onclick = async () => {
    await client.close();
    localStorage.removeItem(USER_KEY);
    location.reload();
  };
  const banner = el('div', { id: 'banner' });
  const messages = el('div', { id: 'messages' });
  const header = el('header', {}, el('h1', {}, 'Tributary tasks'), el('span', { id: 'user' }, user.id), connection, pending, tabRole, el('span', { class: 'spacer' }), logOut);

  const showMessage = (text: string) => {
    const dismiss = el('button', {}, 'Dismiss');
    const message = el('div', { class: 'message' }, el('span', {}, text), dismiss);
    dismiss.onclick = () => message.remove();
    messages.append(message);
  };

  const showConnection = (state = client.connectionState) => {
    connection.textContent = state;
    connection.className = `chip ${state}`;
    const offline = state !== 'connected';
    banner.className = offline ? 'shown' : '';
    banner.textContent = !offline ? '' : navigator.onLine ? 'Connecting to the gateway… your changes are kept on this device.' : 'You are offline. Your changes are kept on this device and sync when you are back online.';
  };
  client.connection$.subscribe(showConnection);
  window.addEventListener('online', () => showConnection());
  window.addEventListener('offline', () => showConnection());
  client.pendingWrites$.subscribe((n) => {
    pending.textContent = n === 1 ? '1 pending write' : `${n} pending writes`;
    pending.dataset.count = String(n);
    pending.className = `chip ${n > 0 ? 'pending' : 'zero'}`;
  });
  client.leader$.subscribe((leader) => (tabRole.textContent = leader ? 'this tab syncs' : 'another tab syncs'));
  client.errors$.subscribe((error) => {
    if (error.kind === 'rejected') {
      const what = error.collection === 'tasks' ? 'task' : 'list';
      showMessage(`The gateway refused your change to a ${what}: ${error.message}. It was put back as the server has it.`);
    } else if (error.kind === 'auth') showMessage(`The gateway refused your log-in (${error.reason}): log out and in again.`);
    else if (error.kind === 'schema') showMessage(`This page is outdated (${error.reason}): reload it.`);
  });

  // Lists, and which of them sync their tasks to this device (the Flexible Sync filter).
  const listItems = el('div', { id: 'lists' });
  const syncState = el('p', { id: 'sync-state', class: 'muted' });
  const newListName = el('input', { placeholder: 'New list', id: 'new-list-name' });
  const newList = el('form', { id: 'new-list' }, newListName, el('button', { type: 'submit' }, 'Add'));
  const syncedLists = (): string[] => {
    const source = client.subscriptions.findByName('tasks')?.source as { projectId?: { $in?: string[] } } | undefined;
    return source?.projectId?.$in ?? [];
  };
  const setSynced = (ids: string[]) => {
    const sorted = [...new Set(ids)].sort();
    client.subscriptions
      .update((m) => (sorted.length > 0 ? void m.add('tasks', { projectId: { $in: sorted } }, { name: 'tasks' }) : void m.removeByName('tasks')))
      .catch((error: Error) => error.name !== 'SupersededError' && showMessage(`Changing what syncs failed: ${error.message}`));
  };
  newList.onsubmit = async (event) => {
    event.preventDefault();
    const name = newListName.value.trim();
    if (!name) return;
    const id = newId();
    await projects.insert({ id, ownerId: user.id, name, archived: false, createdAt: new Date().toISOString() });
    newListName.value = '';
    setSynced([...syncedLists(), id]);
    select(id);
  };
  const renderLists = () => {
    const synced = new Set(syncedLists());
    listItems.replaceChildren(
      ...allProjects.map((p) => {
        const sync = el('input', { type: 'checkbox', class: 'sync', checked: synced.has(p.id), title: "Sync this list's tasks to this device" });
        sync.onclick = (event) => event.stopPropagation();
        sync.onchange = () => setSynced(sync.checked ? [...synced, p.id] : [...synced].filter((id) => id !== p.id));
        const item = el('div', { class: `list${p.id === selected ? ' selected' : ''}`, 'data-id': p.id }, sync, el('span', { class: 'name' }, p.name), el('span', { class: 'owner' }, p.ownerId));
        item.onclick = () => select(p.id);
        return item;
      }),
    );
  };

  // The selected list's tasks.
  const listTitle = commitOnEnter(el('input', { id: 'list-title', class: 'title' }));
  listTitle.onchange = async () => {
    const doc = selected ? await projects.findOne(selected).exec() : null;
    if (doc && listTitle.value.trim()) await doc.incrementalPatch({ name: listTitle.value.trim() });
  };
  const taskList = el('div', { id: 'tasks' });
  const notSynced = el('p', { id: 'not-synced', class: 'muted' });
  const newTaskTitle = el('input', { placeholder: 'New task', id: 'new-task-title' });
  const newTask = el('form', { id: 'new-task' }, newTaskTitle, el('button', { type: 'submit' }, 'Add'));
  newTask.onsubmit = async (event) => {
    event.preventDefault();
    const title = newTaskTitle.value.trim();
    if (!title || !selected) return;
    await tasks.insert({ id: newId(), projectId: selected, ownerId: user.id, title, status: 'TODO', priority: 3, tags: [], assigneeIds: [], minutesLogged: 0 });
    newTaskTitle.value = '';
  };
  const people = el('datalist', { id: 'people' });
  const listPane = el('section', {}, el('h2', {}, 'Tasks'), listTitle, notSynced, taskList, newTask, people);

  const rows = new Map<string, ReturnType<typeof taskRow>>();
  let shownTasks: Task[] = [];
  const renderTasks = () => {
    const project = allProjects.find((p) => p.id === selected);
    listPane.hidden = !project;
    if (!project) return;
    setValue(listTitle, project.name);
    const synced = syncedLists().includes(project.id);
    notSynced.textContent = synced ? '' : "This list's tasks do not sync to this device: tick it on the left.";
    // A task there would be outside what this device syncs: the gateway would refuse it.
    newTask.hidden = !synced;
    const mine = shownTasks.filter((t) => t.projectId === project.id);
    for (const [id, row] of rows) if (!mine.some((t) => t.id === id)) (row.root.remove(), rows.delete(id));
    mine.forEach((task, i) => {
      let row = rows.get(task.id);
      if (!row) rows.set(task.id, (row = taskRow(task.id)));
      row.update(task);
      if (taskList.children[i] !== row.root) taskList.insertBefore(row.root, taskList.children[i] ?? null);
    });
    const names = new Set([user.id, ...allProjects.map((p) => p.ownerId), ...shownTasks.flatMap((t) => [t.ownerId, ...(t.assigneeIds ?? [])])]);
    people.replaceChildren(...[...names].sort().map((n) => el('option', { value: n })));
  };
  const select = (id: string) => {
    selected = id;
    localStorage.setItem(SELECTED_KEY, id);
    renderLists();
    renderTasks();
  };

  const modify = async (id: string, change: (task: Task) => Partial<Task>) => {
    const doc = (await tasks.findOne(id).exec()) as RxDocument<Task> | null;
    await doc?.incrementalModify((task) => ({ ...task, ...change(task) }));
  };
  function taskRow(id: string) {
    const title = commitOnEnter(el('input', { class: 'title' }));
    title.onchange = () => void modify(id, () => ({ title: title.value.trim() || 'Untitled' }));
    const status = el('select', { class: 'status' }, ...STATUSES.map((s) => el('option', { value: s }, s.replace('_', ' ').toLowerCase())));
    status.onchange = () => void modify(id, () => ({ status: status.value as Task['status'] }));
    const priority = el('select', { class: 'priority' }, ...[1, 2, 3, 4, 5].map((p) => el('option', { value: String(p) }, `P${p}`)));
    priority.onchange = () => void modify(id, () => ({ priority: Number(priority.value) }));
    const assignees = el('span', { class: 'assignees' });
    const assign = el('input', { class: 'assign', placeholder: 'assign…', size: 8 });
    assign.setAttribute('list', 'people');
    assign.onkeydown = (event) => {
      const name = assign.value.trim().toLowerCase();
      if (event.key !== 'Enter' || !name) return;
      assign.value = '';
      // An add-wins set: assigning two people at once, even offline, keeps both.
      void modify(id, (t) => ({ assigneeIds: [...new Set([...(t.assigneeIds ?? []), name])] }));
    };
    const minutes = el('span', { class: 'minutes' });
    // A counter: increments from every device add up.
    const minus = el('button', { class: 'minus', title: 'Log 15 minutes less' }, '−15');
    minus.onclick = () => void modify(id, (t) => ({ minutesLogged: (t.minutesLogged ?? 0) - 15 }));
    const plus = el('button', { class: 'plus', title: 'Log 15 minutes' }, '+15');
    plus.onclick = () => void modify(id, (t) => ({ minutesLogged: (t.minutesLogged ?? 0) + 15 }));
    const remove = el('button', { class: 'delete', title: 'Delete the task' }, 'Delete');
    remove.onclick = async () => void (await tasks.findOne(id).exec())?.remove();
    const owner = el('span', { class: 'muted owner' });
    const root = el('div', { class: 'task', 'data-id': id }, title, status, priority, el('div', { class: 'row' }, el('span', { class: 'muted' }, 'assignees:'), assignees, assign, minus, minutes, plus, owner, remove));
    return {
      root,
      update(task: Task) {
        setValue(title, task.title);
        setValue(status, task.status);
        setValue(priority, String(task.priority));
        minutes.textContent = `${task.minutesLogged ?? 0} min`;
        minutes.dataset.value = String(task.minutesLogged ?? 0);
        minus.disabled = (task.minutesLogged ?? 0) < 15;
        owner.textContent = `by ${task.ownerId}`;
        assignees.replaceChildren(
          ...(task.assigneeIds ?? []).map((name) => {
            const unassign = el('button', { title: `Unassign ${name}` }, '×');
            unassign.onclick = () => void modify(id, (t) => ({ assigneeIds: (t.assigneeIds ?? []).filter((a) => a !== name) }));
            return el('span', { class: 'chip assignee', 'data-user': name }, name, unassign);
          }),
        );
      },
    };
  }

  client.subscriptions.changes$.subscribe((snapshot) => {
    syncState.textContent = `Sync filter, version ${snapshot.version}: ${snapshot.state}`;
    syncState.dataset.state = snapshot.state;
    renderLists();
    renderTasks();
  });
  projects.find().$.subscribe((docs) => {
    allProjects = docs.map((d) => d.toJSON() as unknown as Project).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    if (selected === null || !allProjects.some((p) => p.id === selected)) selected = allProjects[0]?.id ?? null;
    renderLists();
    renderTasks();
  });
  tasks.find().$.subscribe((docs) => {
    shownTasks = docs.map((d) => d.toJSON() as unknown as Task).sort((a, b) => a.id.localeCompare(b.id));
    renderTasks();
  });

  const lists = el('aside', {}, el('h2', {}, 'Lists'), listItems, newList, syncState);
  root.replaceChildren(header, banner, messages, el('main', {}, lists, listPane));
  document.body.dataset.ready = 'true';
}

if ('serviceWorker' in navigator) {
  // Cached, the page opens without a network; tests wait for this before going offline.
  navigator.serviceWorker
    .register('/sw.js')
    .then(() => navigator.serviceWorker.ready)
    .then(() => (document.documentElement.dataset.offlineReady = 'true'))
    .catch((error: Error) => console.warn('no offline page:', error.message));
}
const stored = localStorage.getItem(USER_KEY);
if (stored) {
  showApp(JSON.parse(stored) as AuthenticatedUser).catch((error: Error) => {
    // E.g. ?log=verbose, or a database another version of the demo left: say so on the page.
    root.replaceChildren(el('div', { id: 'login' }, el('h2', {}, 'The demo could not start'), el('p', { class: 'muted' }, error.message)));
  });
} else showLogin();
