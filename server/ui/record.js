// The Run document kept up to date from the run's events, as the server folds them
// (`runtime/src/record.rs`, `Run::apply`; reasons worded as `runtime/src/event.rs` words them).
// Applying an event twice leaves the document as applying it once, so an event that arrives
// both in a fetched document and on the stream does no harm.

const END_STATUS = {
  succeeded: 'SUCCESSFUL',
  failed: 'FAILED',
  errored: 'ERRORED',
  cancelled: 'CANCELLED',
  skipped: 'SKIPPED',
};

/** RFC 3339 with milliseconds, as the server writes times. */
function iso(at) {
  return new Date(at).toISOString();
}

function reasonWords(reason) {
  if (!reason) return null;
  const d = reason.detail;
  switch (reason.kind) {
    case 'exitCode':
      return `exit code ${d}`;
    case 'signal':
      return `killed by signal ${d}`;
    case 'abnormal':
      return 'ended abnormally';
    case 'timedOut':
      return `timed out after ${d}`;
    case 'cancelled':
      return 'cancelled';
    case 'givenUp':
      return 'the run was given up';
    case 'couldNotStart':
      return String(d);
    case 'podCouldNotStart':
      return `the pod could not start: ${waitingWords(d)}`;
    case 'jobFailed': {
      let s = 'the Job failed';
      if (d && d.reason) s += `: ${d.reason}`;
      if (d && d.message) s += ` (${d.message})`;
      return s;
    }
    case 'jobDeleted':
      return 'its Job was deleted';
    default:
      return reason.kind || null;
  }
}

function waitingWords(w) {
  if (!w) return '';
  return w.message ? `${w.reason}: ${w.message}` : w.reason;
}

/** `AttemptResult::describe`. */
function describe(result) {
  const parts = [];
  const r = reasonWords(result.reason);
  if (r) parts.push(r);
  if (result.waiting && !(result.reason && result.reason.kind === 'podCouldNotStart')) {
    parts.push(`the container never started (${waitingWords(result.waiting)})`);
  }
  if (result.outputLost) parts.push(`its output could not be kept: ${result.outputLost}`);
  return parts.length ? parts.join('; ') : null;
}

/** `Decision`'s words. */
function decisionWords(why) {
  if (!why) return null;
  if (why === 'conditionFalse') return 'its condition was false';
  const [kind, detail] = Object.entries(why)[0] || [];
  const when = detail && detail.started ? 'before its next attempt' : 'before it started';
  switch (kind) {
    case 'cancelled':
      return `the run was cancelled ${when}`;
    case 'failFast':
      return `fail_fast stopped the run after a failure, ${when}`;
    case 'givenUp':
      return `the run was given up ${when}`;
    default:
      return kind || null;
  }
}

function giveUpWords(why) {
  if (why && why.workerStopped) {
    return `its worker stopped ${why.workerStopped.times} times while driving it; not taken over again`;
  }
  return 'given up';
}

/**
 * Folds one event (as the event streams send it: `type`, `seq`, `at` in milliseconds, the
 * event's fields) into `run`. Answers whether anything the pages show may have changed.
 */
export function apply(run, ev) {
  const at = iso(ev.at);
  const job = typeof ev.job === 'number' ? run.jobs[ev.job] : undefined;
  switch (ev.type) {
    case 'runStarted':
      run.status = 'RUNNING';
      if (!run.startedAt) run.startedAt = at;
      return true;
    case 'attemptStarted': {
      if (!job) return false;
      job.status = 'RUNNING';
      if (!job.startedAt) job.startedAt = at;
      const fresh = { attempt: ev.attempt, status: 'RUNNING', startedAt: at };
      // The same attempt started again (after a take-over) begins anew.
      const i = job.attempts.findIndex((a) => a.attempt === ev.attempt);
      if (i >= 0) job.attempts[i] = fresh;
      else job.attempts.push(fresh);
      return true;
    }
    case 'attemptEnded': {
      if (!job) return false;
      const r = ev.result || {};
      const status = END_STATUS[r.end] || 'ERRORED';
      const reason = describe(r);
      const a = job.attempts.find((x) => x.attempt === ev.attempt);
      if (a) {
        a.status = status;
        setOrDelete(a, 'exitCode', r.exitCode);
        setOrDelete(a, 'reason', reason);
        a.finishedAt = at;
        setOrDelete(a, 'log', r.log);
      }
      job.status = status;
      setOrDelete(job, 'exitCode', r.exitCode);
      setOrDelete(job, 'reason', reason);
      job.finishedAt = at;
      return true;
    }
    case 'retryScheduled':
      if (!job) return false;
      job.status = 'PENDING';
      delete job.finishedAt;
      return true;
    case 'jobDecided':
      if (!job) return false;
      job.status = END_STATUS[ev.outcome] || 'ERRORED';
      job.finishedAt = at;
      job.decidedAt = at;
      if (ev.why) {
        delete job.exitCode;
        job.reason = decisionWords(ev.why);
      }
      return true;
    case 'runFinished':
      run.status = END_STATUS[ev.outcome] || 'ERRORED';
      run.finishedAt = at;
      return true;
    case 'runRetried':
      for (const j of ev.jobs || []) {
        const rec = run.jobs[j];
        if (!rec) continue;
        rec.status = 'PENDING';
        delete rec.exitCode;
        delete rec.reason;
        delete rec.finishedAt;
        delete rec.decidedAt;
      }
      run.status = 'PENDING';
      delete run.finishedAt;
      delete run.reason;
      return true;
    case 'runGivenUp':
      run.reason = giveUpWords(ev.why);
      return true;
    default:
      return false;
  }
}

function setOrDelete(obj, key, value) {
  if (value === undefined || value === null) delete obj[key];
  else obj[key] = value;
}
