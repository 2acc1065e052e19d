// What a process costs, from /proc and from its own resource usage: CPU, memory, bytes read; and
// running a bundled Node program once with its exact CPU time and peak RSS.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidsMentioning, type ControlPlane } from '../lab/control-plane.js';

/** The PID of this control plane's kube-apiserver. */
export function apiserverPid(cp: ControlPlane): number {
  const pid = pidsMentioning(cp.rootDir).find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]!.endsWith('/kube-apiserver');
    } catch {
      return false;
    }
  });
  if (!pid) throw new Error('no kube-apiserver process found for this control plane');
  return pid;
}

const clockTicks = 100;
/** CPU seconds (user + system) a process has used; with `children`, those of its waited-for children too. */
export function cpuSeconds(pid: number, children = false): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // Fields 14-17 of stat (utime, stime, cutime, cstime), counted from the state field here.
  return (Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)) / clockTicks;
}

/** A process's resident memory now and at its peak, in MiB. */
export function rssMiB(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Bytes a process has read through read-like system calls (sockets included): /proc/PID/io rchar. */
export function bytesRead(pid: number): number {
  return Number(/rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
}

// Loaded with --import into a measured program: at exit it writes its own resource usage.
const reporter = `import { writeFileSync } from 'node:fs';
process.on('exit', () => { const u = process.resourceUsage(); writeFileSync(process.env.BENCH_USAGE_FILE, JSON.stringify(u)); });`;

export interface NodeRun {
  seconds: number;
  /** User + system CPU of the process, from its own resourceUsage at exit. */
  cpuMs: number;
  /** Its peak resident memory (maxRSS). */
  peakMiB: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node FILE ARGS` once: wall time, and the CPU and peak RSS the process itself reports at exit. */
export async function timedNode(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<NodeRun> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-usage-'));
  try {
    const preload = join(dir, 'usage.mjs');
    const usageFile = join(dir, 'usage.json');
    writeFileSync(preload, reporter);
    const started = performance.now();
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', preload, file, ...args], { env: { ...env, BENCH_USAGE_FILE: usageFile }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    const seconds = (performance.now() - started) / 1000;
    const u = JSON.parse(readFileSync(usageFile, 'utf8')) as { userCPUTime: number; systemCPUTime: number; maxRSS: number };
    return { seconds, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, peakMiB: u.maxRSS / 1024, code, stdout, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
