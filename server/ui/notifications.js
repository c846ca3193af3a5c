// A run's notifications (the Notifications tab of a run): what was sent to which medium, what
// waits for its next attempt, and the dead letters, which a caller who may write sends again.
// Read while the tab is shown, again every few seconds and when the run changes.

import { api, runPath } from './api.js';
import { h, replace, announce } from './dom.js';
import { timeEl } from './format.js';

/** How often the tab reads the list again while it is shown. */
const EVERY_MS = 5000;

/** A delivery's state as a badge, in the colours of the statuses that mean the same. */
const LOOK = { pending: 'pending', sent: 'successful', dead: 'failed', skipped: 'skipped' };

function stateBadge(state) {
  return h('span', { class: `badge s-${LOOK[state] || 'pending'}`, text: state });
}

/** What a notification is about: `run failed`, or `job load: failed`. */
function about(d) {
  const event = d.event.replaceAll('_', ' ') + (d.after ? ` ${d.after}` : '');
  return d.job ? h('span', {}, 'job ', h('code', { text: d.job }), `: ${event}`) : `run ${event}`;
}

export function createNotifications(panel, { uid, canWrite }) {
  const body = h('div');
  const message = h('p', { class: 'error', role: 'alert' });
  replace(panel, message, body);
  let shown = false;
  let timer = 0;
  let reading = null;
  const busy = new Set();
  let items = null;

  async function read() {
    if (reading) return reading;
    reading = (async () => {
      try {
        const list = await api(runPath(uid, '/notifications'));
        items = list.items;
        message.textContent = '';
        render();
      } catch (e) {
        message.textContent = `The notifications could not be read: ${e.message}`;
      } finally {
        reading = null;
      }
    })();
    return reading;
  }

  async function resend(id) {
    busy.add(id);
    render();
    try {
      await api(`/api/notifications/${encodeURIComponent(id)}/resend`, { method: 'POST' });
      announce('The notification is sent again');
    } catch (e) {
      message.textContent = e.message;
    }
    busy.delete(id);
    await read();
  }

  function render() {
    if (items === null) {
      replace(body, h('p', { class: 'muted', text: 'Loading the notifications…' }));
      return;
    }
    if (items.length === 0) {
      replace(
        body,
        h('p', { class: 'muted', text: 'No notifications for this run. A pipeline asks for them with notify (on failed, succeeded, …); pipelines that ask for none follow the server\u2019s routes.' }),
      );
      return;
    }
    const write = canWrite();
    const rows = items.map((d) => {
      const action =
        write && d.state === 'dead'
          ? h(
              'button',
              { type: 'button', disabled: busy.has(d.id), on: { click: () => resend(d.id) }, 'aria-label': `Send again to ${d.medium}` },
              'Send again',
            )
          : null;
      const time = d.state === 'sent' ? timeEl(d.sentAt) : d.state === 'pending' ? timeEl(d.due) : h('span', { class: 'muted', text: '—' });
      return h(
        'tr',
        { dataset: { id: d.id, state: d.state } },
        h('td', {}, about(d)),
        h('td', {}, h('code', { text: d.medium })),
        h('td', {}, stateBadge(d.state)),
        h('td', { class: 'num', text: String(d.attempts) }),
        h('td', {}, time),
        h('td', { class: 'why', text: d.lastError || '' }),
        h('td', {}, action),
      );
    });
    replace(
      body,
      h(
        'table',
        { class: 'notifications' },
        h('caption', { class: 'muted', text: 'Sent: when the medium took it. Pending: when it is tried next.' }),
        h(
          'thead',
          {},
          h('tr', {}, ['About', 'Medium', 'State', 'Attempts', 'When', 'Last error', ''].map((t) => h('th', { scope: 'col', text: t }))),
        ),
        h('tbody', {}, rows),
      ),
    );
  }

  return {
    show(on) {
      shown = on;
      clearInterval(timer);
      if (on) {
        render();
        read();
        timer = setInterval(read, EVERY_MS);
      }
    },
    /** The run changed: what it notified may have too. */
    update() {
      if (shown) read();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
