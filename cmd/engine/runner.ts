// The one step runner. A procedure (migrating a node, rolling one back, finalizing the cluster) is a
// list of steps, and a step is data: its name, what it would do now and why (`describe`, the dry
// run), whether the cluster shows it done already (`isDone`), and how to do it (`apply`). The
// runner observes, records the step's intent, applies it, records it done, announces it (an Event)
// and calls the boundary hook, the same way for every procedure; a dry run is the runner printing
// each step's description. A run killed anywhere resumes where the record says: a step recorded
// done is not run again, and every other step looks at the cluster before it acts.
import type { Clock } from '../../lib/clock.js';
import type { StepRecord } from '../../lib/node-state.js';

export type StepOutcome = 'done-before' | 'applied' | 'would-apply' | 'not-needed' | 'skipped';

/** What a step did or would do, and why. `skipped` is not recorded as done: a rerun tries again. */
export interface Outcome {
  outcome: StepOutcome;
  message: string;
}

export interface StepResult extends Outcome {
  step: string;
  durationMs: number;
}

export interface Step<C> {
  readonly name: string;
  /** A check: nothing is recorded for it, and a dry run runs it too (it changes nothing). */
  readonly readOnly?: boolean;
  /**
   * Judge this step on the object as it is when the step starts: its intent is written first and
   * that write's answer is the observation (no read before it, and no gap between the look and the
   * record). Otherwise what the run last read or wrote is the observation, and the intent is written
   * once the step is found not done and not refused. Not for steps with `intentData`.
   */
  readonly observeAfresh?: boolean;
  /** The dry run's line: what applying would do now, and why. */
  describe(ctx: C): Outcome | Promise<Outcome>;
  /** What the observation and the record show when nothing is left to do; undefined while something is. */
  isDone(ctx: C): Outcome | undefined;
  /** Throws when the step may not start now (nothing is recorded then). */
  refuse?(ctx: C): void | Promise<void>;
  /** What the step observes before it acts and keeps with its intent, in the same write (the pods it will replace). */
  intentData?(ctx: C): Promise<Record<string, unknown> | undefined>;
  /** Does the step; its intent is recorded before. */
  apply(ctx: C): Promise<Outcome>;
}

/** What the engine tells the person running it. */
export interface EngineReporter {
  /** A line of the log: a step started, finished, or something worth knowing. */
  line(subject: string, text: string): void;
  /** A live status (drain progress); a terminal redraws it in place. `key` says what changed in substance. */
  status(subject: string, text: string, key?: string): void;
}

/** Called at every step boundary (after the write that records it); tests use it to kill the run at exact points. */
export type BoundaryHook = (subject: string, step: string, at: 'intent' | 'done') => void;

/** A record of steps, as every procedure keeps one. */
export interface StepsRecord {
  steps: Partial<Record<string, StepRecord>>;
}

/** What the runner needs of a journal. */
export interface StepJournal {
  stepRecord(step: string): StepRecord | undefined;
  intent(step: string, data?: Record<string, unknown>): Promise<void>;
  done(step: string): void;
  /** Writes the done marks not written yet. */
  flush(): Promise<void>;
}

/**
 * A procedure's record and how it is written. A step's intent (with the data it keeps to resume)
 * is written before its side effects; its done goes with the next write (the next step's intent),
 * one write instead of two: a run killed in between redoes the step, which finds it done (every
 * step looks at the cluster first) and changes nothing; a run stopped at a safe point (a signal)
 * writes them before it stops. `Also` is what may ride in the same write
 * (a cordon and the record that we made it land together or not at all).
 */
export class Journal<R extends StepsRecord, Also = never> implements StepJournal {
  private unsavedDone: string[] = [];

  constructor(
    private current: R,
    private readonly write: (record: R, also?: Also) => Promise<void>,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly boundary: (step: string, at: 'intent' | 'done') => void = () => {},
  ) {}

  get record(): R {
    return this.current;
  }

  stepRecord(step: string): StepRecord | undefined {
    return this.current.steps[step];
  }

  /** Changes fields of the record; they go with the next write. */
  note(fields: Partial<R>): void {
    this.current = { ...this.current, ...fields };
  }

  /** Records `step`'s intent, with `data` (what it needs to resume) when given, and writes the record. */
  async intent(step: string, data?: Record<string, unknown>): Promise<void> {
    const previous = this.current.steps[step] ?? {};
    const first = !previous.intent;
    this.current = { ...this.current, steps: { ...this.current.steps, [step]: { ...previous, intent: previous.intent ?? this.now(), ...(data ? { data } : {}) } } };
    await this.save();
    if (first || data) this.boundary(step, 'intent');
  }

  /** Records `step` as done; written with the next write. */
  done(step: string): void {
    this.current = { ...this.current, steps: { ...this.current.steps, [step]: { ...this.current.steps[step], done: this.now() } } };
    this.unsavedDone.push(step);
  }

  /** Writes what is done and not written yet, if anything. */
  async flush(): Promise<void> {
    if (this.unsavedDone.length > 0) await this.save();
  }

  /** Writes the record (and `also` in the same write). */
  async save(also?: Also): Promise<void> {
    await this.write(this.current, also);
    const saved = this.unsavedDone;
    this.unsavedDone = [];
    for (const s of saved) this.boundary(s, 'done');
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

export interface RunOptions<C> {
  /** Whom the steps are about (a node's name), for the log. */
  subject: string;
  journal: StepJournal;
  /** The context of `step`, with what it is judged on observed. */
  observe(step: Step<C>): Promise<C>;
  /** Tells the cluster a step is over (an Event on the node). */
  announce?(step: string, result: Outcome): Promise<void>;
  report: EngineReporter;
  clock: Clock;
  signal?: AbortSignal | undefined;
  /** The error when `signal` fired before `step`. */
  stopped(step: string): Error;
}

/** Runs the steps in order: observe, record the intent, apply, record done, announce. */
export async function runSteps<C>(steps: readonly Step<C>[], o: RunOptions<C>): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const step of steps) {
    if (o.signal?.aborted) {
      // A safe point: the steps done so far are written before stopping, so a rerun neither
      // repeats nor re-announces them (done marks otherwise go with the next step's intent). If
      // that write fails, the stop still stands: a rerun finds those steps done on the cluster.
      await o.journal.flush().catch(() => undefined);
      throw o.stopped(step.name);
    }
    if (!step.readOnly && o.journal.stepRecord(step.name)?.done) {
      results.push({ step: step.name, outcome: 'done-before', message: 'done in an earlier run', durationMs: 0 });
      continue;
    }
    const started = o.clock.now();
    const intentFirst = Boolean(step.observeAfresh && !step.readOnly);
    if (intentFirst) await o.journal.intent(step.name);
    const ctx = await o.observe(step);
    let result = step.isDone(ctx);
    if (!result) {
      o.report.line(o.subject, `${step.name}: started`);
      await step.refuse?.(ctx);
      if (!step.readOnly && !intentFirst) await o.journal.intent(step.name, await step.intentData?.(ctx));
      result = await step.apply(ctx);
    }
    if (!step.readOnly && result.outcome !== 'skipped') o.journal.done(step.name);
    await o.announce?.(step.name, result);
    const durationMs = o.clock.now() - started;
    results.push({ step: step.name, ...result, durationMs });
    o.report.line(o.subject, `${step.name}: ${result.message} (${(durationMs / 1000).toFixed(1)}s)`);
  }
  return results;
}

/** The dry run: what each step would do and why, changing nothing (a read-only step runs). */
export async function describeSteps<C>(steps: readonly Step<C>[], o: Pick<RunOptions<C>, 'subject' | 'observe' | 'report'> & { done(step: string): boolean }): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const step of steps) {
    const result: Outcome = o.done(step.name) ? { outcome: 'done-before', message: 'done in an earlier run' } : await (async () => {
      const ctx = await o.observe(step);
      return step.readOnly ? step.apply(ctx) : step.describe(ctx);
    })();
    results.push({ step: step.name, ...result, durationMs: 0 });
    o.report.line(o.subject, `${step.name}: ${result.outcome === 'would-apply' ? 'would ' : ''}${result.message}`);
  }
  return results;
}
