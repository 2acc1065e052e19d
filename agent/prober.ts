// Probes the selected peers over ICMP (the system ping through the `ping` package), HTTP (undici,
// to the peer's /v1/ping, whose answer must name the expected pod: a wrong answer means the IP now
// belongs to someone else) and optionally large ICMP packets with DF set (MTU problems between the
// overlays). One global rate limit with jitter keeps probes from bursting; within it the probes of
// the migration focus have a budget of their own, so that however many nodes a wave puts in focus
// the other cells keep their share and never go stale; every probe has a timeout.
import ping from 'ping';
import { request } from 'undici';
import type { PeerRef, ProbeProtocol } from '../lib/row.js';
import type { MatrixStore } from './matrix.js';
import { peerKey } from './matrix.js';

export interface ProbeResult {
  ok: boolean;
  rttMs?: number | undefined;
  error?: string | undefined;
}

/** The three probes, behind one interface so the scheduler is testable without a network. */
export interface Probes {
  icmp(ip: string, timeoutMs: number): Promise<ProbeResult>;
  icmpLarge(ip: string, timeoutMs: number): Promise<ProbeResult>;
  http(peer: PeerRef, timeoutMs: number): Promise<ProbeResult>;
}

/** What /v1/ping answers. */
export interface PingAnswer {
  node: string;
  pod: string;
  ip: string;
  overlay: string;
}

async function icmpProbe(ip: string, timeoutMs: number, extra: string[]): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const res = await ping.promise.probe(ip, { timeout: Math.max(1, Math.ceil(timeoutMs / 1000)), min_reply: 1, extra });
    if (res.alive) {
      const time = typeof res.time === 'number' ? res.time : Number.parseFloat(String(res.time));
      return { ok: true, rttMs: Number.isFinite(time) ? time : performance.now() - started };
    }
    const output = String((res as { output?: string }).output ?? '');
    const reason = /frag needed|message too long|mtu/i.exec(output)?.[0];
    return { ok: false, error: reason ? `icmp: ${reason} (MTU)` : 'icmp: no reply' };
  } catch (err) {
    return { ok: false, error: `icmp: ${(err as Error).message}` };
  }
}

/** Real probes: ping for ICMP, undici for HTTP to `port`; `largeSize` bytes of ICMP payload with DF. */
export function realProbes(port: number, largeSize: number): Probes {
  return {
    icmp: (ip, timeoutMs) => icmpProbe(ip, timeoutMs, []),
    icmpLarge: (ip, timeoutMs) => icmpProbe(ip, timeoutMs, ['-s', String(largeSize), '-M', 'do']),
    async http(peer, timeoutMs) {
      const started = performance.now();
      try {
        const res = await request(`http://${peer.ip.includes(':') ? `[${peer.ip}]` : peer.ip}:${port}/v1/ping`, {
          signal: AbortSignal.timeout(timeoutMs),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const body = (await res.body.json()) as Partial<PingAnswer>;
        const rttMs = performance.now() - started;
        if (res.statusCode !== 200) return { ok: false, rttMs, error: `http: status ${res.statusCode}` };
        if (body.pod !== peer.pod || body.node !== peer.node) {
          return { ok: false, rttMs, error: `http: answered by ${body.pod ?? '?'} on ${body.node ?? '?'}, expected ${peer.pod} on ${peer.node} (IP reused?)` };
        }
        return { ok: true, rttMs };
      } catch (err) {
        const e = err as Error & { code?: string; cause?: { code?: string } };
        return { ok: false, error: `http: ${e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timeout' : e.code ?? e.cause?.code ?? e.message}` };
      }
    },
  };
}

export interface ProberOptions {
  intervalMs: number;
  /**
   * For peers in the migration focus (a node being migrated, or this agent's own node then): the
   * gate after a node's restart needs several fresh samples of its cells, so they come faster.
   */
  focusIntervalMs?: number;
  timeoutMs: number;
  /** Probes started per second at most, over all peers and protocols. */
  maxPerSecond: number;
  /**
   * The share of `maxPerSecond` that probes of focus peers may take (0-1; default 1, no separate
   * budget). The rest is left to the other peers whatever the focus asks for: a wave of 50 nodes
   * puts 100 focus cells every 2 s on every agent, which alone meets a 50/s limit.
   */
  focusShare?: number;
  /** Each probe's next time is interval x (1 +/- jitter). */
  jitter: number;
}

type Task = { peer: PeerRef; protocol: ProbeProtocol; due: number; running: boolean; focus: boolean };

/** Schedules probes of the store's selected peers and records the results (the store's one writer). */
export class Prober {
  private tasks = new Map<string, Task>();
  private timer: NodeJS.Timeout | undefined;
  private tokens: number;
  private focusTokens: number;
  private lastRefill: number;
  private inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly store: MatrixStore,
    private readonly probes: Probes,
    private readonly opts: ProberOptions,
    private readonly onResult: (peer: PeerRef, protocol: ProbeProtocol, result: ProbeResult) => void = () => {},
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.tokens = opts.maxPerSecond;
    this.focusTokens = this.focusCapacity();
    this.lastRefill = now();
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.runDue();
      this.timer = setTimeout(tick, 20);
      this.timer.unref?.();
    };
    tick();
  }

  /** Stops scheduling and waits for the probes in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** Syncs the task list with the store's peers; new peers start at a random point of the interval. */
  private syncTasks(now: number): void {
    const wanted = new Map<string, { peer: PeerRef; protocol: ProbeProtocol; focus: boolean }>();
    for (const sel of this.store.selected()) for (const protocol of sel.protocols) wanted.set(`${peerKey(sel.ref)}|${protocol}`, { peer: sel.ref, protocol, focus: sel.focus });
    for (const key of this.tasks.keys()) if (!wanted.has(key)) this.tasks.delete(key);
    for (const [key, w] of wanted) {
      const task = this.tasks.get(key);
      if (!task) {
        this.tasks.set(key, { ...w, due: now + this.random() * this.intervalOf(w.focus), running: false });
      } else if (w.focus !== task.focus) {
        task.focus = w.focus;
        // Entering the focus: the next probe comes within the focus interval, not the old one.
        if (w.focus && !task.running) task.due = Math.min(task.due, now + this.random() * this.intervalOf(true));
      }
    }
  }

  private intervalOf(focus: boolean): number {
    return focus && this.opts.focusIntervalMs ? Math.min(this.opts.focusIntervalMs, this.opts.intervalMs) : this.opts.intervalMs;
  }

  private focusRate(): number {
    return this.opts.maxPerSecond * Math.min(1, Math.max(0, this.opts.focusShare ?? 1));
  }

  /** The focus bucket holds at least one token, so a small budget still lets probes through. */
  private focusCapacity(): number {
    return Math.max(1, this.focusRate());
  }

  /** Starts every due probe the rate limits allow (the global one, and the focus budget for focus peers). Exposed for tests. */
  runDue(): void {
    const now = this.now();
    this.syncTasks(now);
    const elapsed = (now - this.lastRefill) / 1000;
    this.tokens = Math.min(this.opts.maxPerSecond, this.tokens + elapsed * this.opts.maxPerSecond);
    this.focusTokens = Math.min(this.focusCapacity(), this.focusTokens + elapsed * this.focusRate());
    this.lastRefill = now;
    const due = [...this.tasks.values()].filter((t) => !t.running && t.due <= now).sort((a, b) => a.due - b.due);
    for (const task of due) {
      if (this.tokens < 1) break;
      // A focus probe over its budget waits; the others behind it in the queue still go.
      if (task.focus && this.focusTokens < 1) continue;
      this.tokens -= 1;
      if (task.focus) this.focusTokens -= 1;
      task.running = true;
      const started = this.now();
      const p = this.probe(task)
        .then((result) => {
          this.store.record(task.peer, task.protocol, { at: started, ...result });
          this.onResult(task.peer, task.protocol, result);
        })
        .finally(() => {
          task.running = false;
          task.due = started + this.intervalOf(task.focus) * (1 + (this.random() * 2 - 1) * this.opts.jitter);
          this.inFlight.delete(p);
        });
      this.inFlight.add(p);
    }
  }

  private probe(task: Task): Promise<ProbeResult> {
    switch (task.protocol) {
      case 'icmp':
        return this.probes.icmp(task.peer.ip, this.opts.timeoutMs);
      case 'icmp-large':
        return this.probes.icmpLarge(task.peer.ip, this.opts.timeoutMs);
      case 'http':
        return this.probes.http(task.peer, this.opts.timeoutMs);
    }
  }
}
