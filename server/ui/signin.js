// The sign-in page: a token, checked by `POST /api/session`, which keeps it in an HttpOnly
// cookie (this page never stores it).

import { api } from './api.js';
import { h, replace } from './dom.js';

export function mount(main, params, ctx) {
  document.title = 'Sign in · chainr';
  const next = params.query.get('next');
  const target = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
  if (ctx.me !== null) {
    ctx.navigate(target, { replace: true });
    return {};
  }
  const input = h('input', {
    id: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    spellcheck: 'false',
  });
  const message = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'signin', on: { submit } },
    h('h1', { text: 'Sign in' }),
    h('p', { class: 'muted' }, 'Paste an API token (', h('code', { text: 'chainrc token NAME' }), ' makes one).'),
    h('label', { for: 'token', text: 'Token' }),
    input,
    message,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  replace(main, form);
  input.focus();

  async function submit(e) {
    e.preventDefault();
    replace(message);
    try {
      await api('/api/session', { method: 'POST', body: input.value.trim(), type: 'text/plain' });
    } catch (err) {
      message.textContent = err.status === 401 ? 'This token is not known to the server.' : err.message;
      input.select();
      return;
    }
    input.value = '';
    await ctx.signedIn();
    ctx.navigate(target, { replace: true });
  }
  return {};
}
