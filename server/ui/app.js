// The UI's entry point: who the caller is, the header, and the router that maps the page's URL
// to a page (`/`, `/runs/{uid}`, `/runs/{uid}/jobs/{job}`, `/new`, `/signin`). Links inside
// the UI change the URL without reloading (History API); the back button works as usual.

import { api, ApiError, whenUnauthorized } from './api.js';
import { h, replace } from './dom.js';

/** What a page is given: who the caller is, and how to go elsewhere. */
const ctx = {
  me: null,
  navigate,
  /** Whether the caller may submit, cancel and retry. */
  canWrite: () => ctx.me !== null && ctx.me.scope === 'write',
};

const routes = [
  { pattern: /^\/$/, page: () => import('./runs.js'), key: () => 'runs' },
  { pattern: /^\/new$/, page: () => import('./new.js'), key: () => 'new' },
  { pattern: /^\/signin$/, page: () => import('./signin.js'), key: () => 'signin', open: true },
  {
    pattern: /^\/runs\/([^/]+)(?:\/jobs\/([^/]+))?$/,
    page: () => import('./run.js'),
    key: (m) => `run:${m[1]}`,
  },
];

/** The page on screen: its key (a run's pages share one) and what it answered at mount. */
let current = null;

function match(pathname) {
  for (const r of routes) {
    const m = r.pattern.exec(pathname);
    if (m) return { route: r, m };
  }
  return null;
}

function params(m) {
  const decode = (s) => (s === undefined ? undefined : decodeURIComponent(s));
  return { uid: decode(m[1]), job: decode(m[2]), query: new URLSearchParams(location.search) };
}

async function route() {
  const main = document.getElementById('main');
  const found = match(location.pathname);
  if (!found) {
    stop();
    replace(main, h('h1', { text: 'Not found' }), h('p', {}, 'Nothing is here. ', h('a', { href: '/' }, 'See the runs.')));
    return;
  }
  if (!found.route.open && ctx.me === null) {
    navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    return;
  }
  const key = found.route.key(found.m);
  const p = params(found.m);
  // Another URL of the page on screen (a run and its job panel): the page updates itself.
  if (current && current.key === key && current.view.update) {
    current.view.update(p);
    return;
  }
  stop();
  const token = {};
  current = { key, view: {}, token };
  const module = await found.route.page();
  if (current.token !== token) return;
  replace(main);
  main.className = `page-${key.split(':')[0]}`;
  current.view = (await module.mount(main, p, ctx)) || {};
  if (current.token !== token && current.view.stop) current.view.stop();
}

function stop() {
  if (current && current.view.stop) current.view.stop();
  current = null;
}

/** Goes to `url` inside the UI. */
function navigate(url, { replace: replacing = false } = {}) {
  if (replacing) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

/** Links to the UI's own pages change the URL without a reload. */
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api') || url.pathname.startsWith('/ui/')) return;
  // Links within the same page (#L120) keep their usual behaviour.
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  if (!match(url.pathname)) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener('popstate', route);

function header() {
  const nav = document.getElementById('nav');
  const me = document.getElementById('me');
  if (ctx.me === null) {
    replace(nav);
    replace(me);
    return;
  }
  replace(
    nav,
    h('a', { href: '/' }, 'Runs'),
    ctx.canWrite() ? h('a', { href: '/new', class: 'button primary' }, 'New run') : null,
  );
  const who = ctx.me.name === null ? 'no authentication' : `${ctx.me.name} (${ctx.me.scope})`;
  replace(
    me,
    h('span', { class: 'muted', text: who }),
    ctx.me.auth === 'cookie'
      ? h('button', { type: 'button', class: 'link', on: { click: signOut } }, 'Sign out')
      : null,
  );
}

async function signOut() {
  try {
    await api('/api/session', { method: 'DELETE' });
  } catch {
    // Signed out anyway as far as this page goes.
  }
  ctx.me = null;
  header();
  navigate('/signin');
}

/** Asks the server who we are; null when a sign-in is needed. */
async function whoami() {
  try {
    return await api('/api/whoami');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

/** Called by the sign-in page once the cookie is set. */
ctx.signedIn = async () => {
  ctx.me = await whoami();
  header();
};

whenUnauthorized(() => {
  if (ctx.me !== null && ctx.me.auth !== 'none') {
    ctx.me = null;
    header();
    if (location.pathname !== '/signin') {
      navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    }
  }
});

async function start() {
  try {
    ctx.me = await whoami();
  } catch (e) {
    replace(document.getElementById('main'), h('h1', { text: 'chainr' }), h('p', { class: 'error', text: e.message }));
    return;
  }
  header();
  await route();
}

start();
