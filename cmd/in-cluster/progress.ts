// The run pod's side of an in-cluster run: what it is doing (its wave, its node, its last line)
// written on its own Job, so `status` shows it from any terminal without reading logs. The run's
// log lines are the source: the pod's Io passes every line through unchanged (for `kubectl logs`)
// and keeps the latest state, written at most every few seconds and once more at the end.
import { inClusterRun } from '../../lib/defaults.js';
import type { Io } from '../context.js';

/** What a run pod records on its Job (annotation `cilium-migrate.io/progress`, JSON). */
export interface RunProgress {
  pod: string;
  /** The node the run pod runs on. */
  podNode: string;
  /** The wave under way, when the run goes in waves. */
  wave?: { index: number; of: number } | undefined;
  /** The node the last line was about. */
  node?: string | undefined;
  message: string;
  at: string;
}

/** Reads a run's progress from the Job's annotation; undefined when absent or unreadable. */
export function readProgress(annotations: Record<string, string>): RunProgress | undefined {
  const raw = annotations[inClusterRun.progressAnnotation];
  if (!raw) return undefined;
  try {
    const p = JSON.parse(raw) as RunProgress;
    return typeof p.message === 'string' && typeof p.pod === 'string' ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Folds one log line into the progress: a wave line, a `[node] ...` line, or any other message. */
export function foldLine(p: RunProgress, line: string, now: Date): RunProgress {
  const text = line.replace(/\x1b\[[0-9;]*[A-Za-z]|\r/g, '').trim();
  if (!text) return p;
  const wave = /^wave (\d+) of (\d+): /.exec(text);
  if (wave) return { ...p, wave: { index: Number(wave[1]), of: Number(wave[2]) }, message: text, at: now.toISOString() };
  const node = /^\[([^\]]+)\] (.*)$/.exec(text);
  if (node) return { ...p, node: node[1], message: node[2]!, at: now.toISOString() };
  return { ...p, message: text, at: now.toISOString() };
}

export interface ProgressClock {
  now(): number;
}

/**
 * An Io for the run pod: every write goes to `io` as it is; the progress is written through
 * `write` at most every `everyMs` (the latest state wins), and `close` writes the last one.
 * A progress write that fails is not the run's failure: it is said once and the run goes on.
 */
export function progressIo(io: Io, start: Pick<RunProgress, 'pod' | 'podNode'>, write: (p: RunProgress) => Promise<void>, clock: ProgressClock, everyMs: number): { io: Io; close(final?: string): Promise<void> } {
  let state: RunProgress = { ...start, message: 'starting', at: new Date(clock.now()).toISOString() };
  let dirty = true;
  let lastWrite = -Infinity;
  let inFlight: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let warned = false;
  let partial = '';
  const flush = (): Promise<void> => {
    if (inFlight || !dirty) return inFlight ?? Promise.resolve();
    dirty = false;
    lastWrite = clock.now();
    inFlight = write(state)
      .catch((err: unknown) => {
        if (!warned) io.err(`warning: could not record the run's progress on its Job (${err instanceof Error ? err.message : String(err)}); status will not show it\n`);
        warned = true;
      })
      .finally(() => {
        inFlight = undefined;
        if (dirty) schedule();
      });
    return inFlight;
  };
  const schedule = () => {
    if (timer) return;
    const wait = Math.max(0, lastWrite + everyMs - clock.now());
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, wait);
    timer.unref();
  };
  const take = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) state = foldLine(state, line, new Date(clock.now()));
    dirty = true;
    schedule();
  };
  return {
    io: { isTTY: io.isTTY, out: (t) => io.out(t), err: (t) => (io.err(t), take(t)) },
    /** Writes the last state; `final` (how the run ended) becomes its message. */
    async close(final?: string) {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (partial) state = foldLine(state, partial, new Date(clock.now()));
      partial = '';
      if (final) state = { ...state, message: final, at: new Date(clock.now()).toISOString() };
      await inFlight;
      dirty = true;
      await flush();
    },
  };
}
