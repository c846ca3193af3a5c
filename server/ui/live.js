// Live changes from the server's event streams (`/api/events`, `/api/runs/{uid}/events`) with
// the browser's EventSource. When a connection drops, EventSource reconnects by itself and
// sends `Last-Event-ID`, so the server resumes after the last event seen: nothing is missed,
// nothing comes twice. Only when the browser gives up (an answer that is not a stream, such as
// a 503 while the server restarts) is a new EventSource opened, with `?after=` the last id.

/** Every event type the streams send. */
const TYPES = [
  'ready',
  'runCreated',
  'runStarted',
  'attemptStarted',
  'attemptEnded',
  'retryScheduled',
  'retryDue',
  'jobDecided',
  'cancelRequested',
  'runFinished',
  'runGivenUp',
  'runRetried',
];

/**
 * Follows `url`, calling `onEvent(data, id)` for each event in order, and `onState(state)` with
 * `open`, `reconnecting` or `closed`. `after` starts after that id. Answers a function that
 * stops following.
 */
export function follow(url, { after = null, onEvent, onState = () => {}, onOpen = () => {} }) {
  let lastId = after;
  let source = null;
  let retryTimer = 0;
  let stopped = false;
  let failures = 0;

  function open() {
    const u = new URL(url, location.href);
    if (lastId !== null) u.searchParams.set('after', String(lastId));
    source = new EventSource(u.pathname + u.search);
    source.onopen = () => {
      failures = 0;
      onState('open');
      onOpen();
    };
    source.onerror = () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up on this one: open another, after the last event seen.
        onState('reconnecting');
        failures += 1;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        retryTimer = setTimeout(() => {
          if (!stopped) open();
        }, delay);
      } else {
        onState('reconnecting');
      }
    };
    const handle = (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      // `ready` only says where the stream starts: kept, for a new connection to start there.
      if (e.type === 'ready') return;
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      onEvent(data, e.lastEventId);
    };
    for (const t of TYPES) source.addEventListener(t, handle);
    source.addEventListener('message', handle);
  }

  open();
  return () => {
    stopped = true;
    clearTimeout(retryTimer);
    if (source) source.close();
    onState('closed');
  };
}

/** A small "live" indicator that follows a stream's state. */
export function liveIndicator(el) {
  return (state) => {
    el.className = `live ${state === 'open' ? 'on' : 'off'}`;
    el.textContent = state === 'open' ? 'Live' : state === 'closed' ? 'Stopped' : 'Reconnecting…';
  };
}
