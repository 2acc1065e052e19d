// What a real-node lab makes on the machine, and how every piece of it is found again and removed,
// also after the lab's process was SIGKILLed. Everything is named after the lab's prefix (`cml` and
// four hex digits): network namespaces PREFIX-*, the cgroup /PREFIX in every hierarchy, and an
// owner record /run/cilium-migrate-labs/PREFIX.json naming the owning process (PID and start
// time, so a recycled PID is not taken for it) and the state directory. A state directory carries
// the marker file `.cilium-migrate-lab`; nothing without it is ever removed.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const labMarker = '.cilium-migrate-lab';
const ownerDir = '/run/cilium-migrate-labs';
const prefixPattern = /^cml[0-9a-f]{4}$/;
export const cgroupRoot = '/sys/fs/cgroup';

export interface OwnerRecord {
  prefix: string;
  pid: number;
  start: string;
  stateDir: string;
}

/** Field 22 of /proc/PID/stat: with the PID it names one process for the life of the machine. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function listNetns(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean) : [];
}

/** Claims a fresh prefix for a lab whose state lives in `stateDir`, recording this process as its owner. */
export function claimPrefix(stateDir: string): string {
  mkdirSync(ownerDir, { recursive: true, mode: 0o700 });
  const existing = listNetns();
  for (let attempt = 0; attempt < 32; attempt++) {
    const prefix = `cml${randomBytes(2).toString('hex')}`;
    if (existing.some((n) => n.startsWith(`${prefix}-`)) || hierarchies().some((h) => existsSync(join(cgroupRoot, h, prefix)))) continue;
    const record: OwnerRecord = { prefix, pid: process.pid, start: processStartTime(process.pid) ?? '', stateDir };
    try {
      writeFileSync(join(ownerDir, `${prefix}.json`), JSON.stringify(record), { flag: 'wx' });
    } catch {
      continue;
    }
    return prefix;
  }
  throw new Error(`no free lab prefix; remove stale records in ${ownerDir}`);
}

export function releasePrefix(prefix: string): void {
  rmSync(join(ownerDir, `${prefix}.json`), { force: true });
}

export function ownerRecords(): OwnerRecord[] {
  let entries: string[];
  try {
    entries = readdirSync(ownerDir);
  } catch {
    return [];
  }
  const out: OwnerRecord[] = [];
  for (const e of entries) {
    if (!e.endsWith('.json') || !prefixPattern.test(e.slice(0, -5))) continue;
    try {
      out.push(JSON.parse(readFileSync(join(ownerDir, e), 'utf8')) as OwnerRecord);
    } catch {
      // half written: its owner is still starting, or it is garbage; either way not ours to judge now
    }
  }
  return out;
}

export function ownerAlive(r: OwnerRecord): boolean {
  const start = processStartTime(r.pid);
  return start !== undefined && start === r.start;
}

/** The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers, name=systemd, unified). */
export function hierarchies(): string[] {
  try {
    return readdirSync(cgroupRoot).filter((h) => {
      try {
        return statSync(join(cgroupRoot, h, 'cgroup.procs')).isFile();
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

/** Removes the cgroup `path` (relative) and everything below it in every hierarchy; returns what could not be removed. */
export function removeCgroupTree(path: string): string[] {
  const left: string[] = [];
  for (const h of hierarchies()) {
    const top = join(cgroupRoot, h, path);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    };
    try {
      walk(top);
    } catch {
      // a directory went away under us
    }
    for (const d of dirs.reverse()) {
      try {
        rmdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left.push(d);
      }
    }
  }
  return left;
}

/** PIDs in any cgroup under `path` (relative), in any hierarchy. */
export function cgroupPids(path: string): number[] {
  const pids = new Set<number>();
  for (const h of hierarchies()) {
    const walk = (d: string) => {
      try {
        for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      } catch {
        // gone
      }
    };
    if (existsSync(join(cgroupRoot, h, path))) walk(join(cgroupRoot, h, path));
  }
  return [...pids];
}

/** The inode of a namespace link or bind mount (`net:[4026532]` or /run/netns/NAME). */
function nsInode(path: string): string | undefined {
  try {
    return path.startsWith('/proc/') ? readlinkSync(path) : `net:[${statSync(path).ino}]`;
  } catch {
    return undefined;
  }
}

/** PIDs of processes inside any of the named network namespaces. */
export function pidsInNetns(names: string[]): number[] {
  const wanted = new Set(names.map((n) => nsInode(`/run/netns/${n}`)).filter((x): x is string => x !== undefined));
  if (wanted.size === 0) return [];
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const ns = nsInode(`/proc/${e}/ns/net`);
    if (ns !== undefined && wanted.has(ns)) pids.push(Number(e));
  }
  return pids;
}

/** Mount points of this (the machine's) mount namespace under `dir`. */
export function mountsUnder(dir: string): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
  } catch {
    return [];
  }
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Deletes network namespaces, in one `ip` process. */
export function deleteNetns(names: string[]): void {
  if (names.length === 0) return;
  spawnSync('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'], timeout: 10_000 });
}

/** True when `dir` is a lab's state directory (it carries the marker). */
export function isLabDir(dir: string): boolean {
  return existsSync(join(dir, labMarker));
}

/** What of lab `prefix` (state in `stateDir`) is still on the machine. */
export function leftovers(prefix: string, stateDir?: string): string[] {
  const netns = listNetns().filter((n) => n.startsWith(`${prefix}-`));
  const left = [
    ...netns.map((n) => `network namespace ${n}`),
    ...pidsInNetns(netns).map((p) => `process ${p}`),
    ...cgroupPids(prefix).map((p) => `process ${p} (cgroup /${prefix})`),
    ...hierarchies().filter((h) => existsSync(join(cgroupRoot, h, prefix))).map((h) => `cgroup ${h}/${prefix}`),
  ];
  if (stateDir !== undefined) {
    left.push(...mountsUnder(stateDir).map((m) => `mount ${m}`));
    if (isLabDir(stateDir)) left.push(`directory ${stateDir}`);
  }
  return left;
}

/**
 * Removes everything of lab `prefix`: its processes (by network namespace and cgroup), network
 * namespaces, cgroups and, when it carries the marker, its state directory (or, with
 * `keepStateDir`, only the nodes' files in it, so its log stays for `lab up` to show). Returns
 * what is left.
 */
export async function removeLab(prefix: string, stateDir?: string, keepStateDir = false): Promise<string[]> {
  if (!prefixPattern.test(prefix)) throw new Error(`"${prefix}" is not a lab prefix`);
  for (let round = 0; round < 20; round++) {
    const netns = listNetns().filter((n) => n.startsWith(`${prefix}-`));
    const pids = [...pidsInNetns(netns), ...cgroupPids(prefix)];
    if (pids.length === 0) break;
    killAll(pids);
    await new Promise((r) => setTimeout(r, 200));
  }
  deleteNetns(listNetns().filter((n) => n.startsWith(`${prefix}-`)));
  for (let round = 0; round < 20 && removeCgroupTree(prefix).length > 0; round++) await new Promise((r) => setTimeout(r, 200));
  if (stateDir !== undefined && isLabDir(stateDir) && mountsUnder(stateDir).length === 0) {
    if (!keepStateDir) rmSync(stateDir, { recursive: true, force: true });
    else for (const d of ['nodes', 'bin', 'registry-index.json']) rmSync(join(stateDir, d), { recursive: true, force: true });
  }
  const left = leftovers(prefix, keepStateDir ? undefined : stateDir);
  if (left.length === 0) releasePrefix(prefix);
  return left;
}

/** Removes the labs whose owning process is gone (a lab SIGKILLed); returns what could not be removed. */
export async function reapStaleLabs(): Promise<string[]> {
  const left: string[] = [];
  for (const r of ownerRecords()) {
    if (ownerAlive(r)) continue;
    left.push(...await removeLab(r.prefix, r.stateDir));
  }
  return left;
}
