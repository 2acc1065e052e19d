// Which network namespaces belong to which run, and their cleanup: a run claims a name prefix
// (recorded with its PID and start time, so a recycled PID is not mistaken for it), its namespaces
// go when it exits, and the next run deletes what a SIGKILLed one left.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit } from './process.js';

export const namePrefix = 'cmt';
const prefixPattern = /^cmt[0-9a-f]{4}$/;
export const ownerDir = '/run/cilium-migrate-netns';

const liveNamespaces = new Set<string>();
const ownedPrefixes = new Set<string>();
let hooksInstalled = false;

function ownerFile(prefix: string): string {
  return join(ownerDir, `${prefix}.owner`);
}

/** A prefix no other run holds, recorded as this process's; undefined when none is free. */
export function claimPrefix(): string | undefined {
  mkdirSync(ownerDir, { recursive: true, mode: 0o700 });
  const existing = listNetns();
  for (let attempt = 0; attempt < 32; attempt++) {
    const prefix = `${namePrefix}${randomBytes(2).toString('hex')}`;
    if (existing.some((n) => n.startsWith(`${prefix}-`))) continue;
    try {
      // 'wx' fails if the file exists: another run holds this prefix.
      writeFileSync(ownerFile(prefix), `${process.pid} ${processStartTime(process.pid) ?? ''}\n`, { flag: 'wx' });
    } catch {
      continue;
    }
    ownedPrefixes.add(prefix);
    return prefix;
  }
  return undefined;
}

function ownerAlive(record: string): boolean {
  const [pid, start] = record.trim().split(/\s+/);
  if (pid === undefined || !/^\d+$/.test(pid)) return false;
  const now = processStartTime(Number(pid));
  return now !== undefined && (start === undefined || start === now);
}

// Field 22 of /proc/PID/stat; with the PID it names one process for the life of the machine.
function processStartTime(pid: number): string | undefined {
  const stat = readFileOr(`/proc/${pid}/stat`, '');
  const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return afterComm[19];
}

/** Deletes this process's namespaces when it exits (normally, or on SIGINT, SIGTERM, SIGHUP). */
export function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  onExit(deleteOwnedNow);
}

function deleteOwnedNow(): void {
  if (liveNamespaces.size > 0) deleteNetnsSync([...liveNamespaces].reverse());
  liveNamespaces.clear();
  for (const prefix of ownedPrefixes) {
    try {
      unlinkSync(ownerFile(prefix));
    } catch {
      // already gone
    }
  }
  ownedPrefixes.clear();
}

// One ip process for all of them: this runs in exit hooks, where time is short.
function deleteNetnsSync(names: string[]): void {
  spawnSync('ip', ['-force', '-batch', '-'], {
    input: names.map((n) => `netns del ${n}\n`).join(''),
    stdio: ['pipe', 'ignore', 'ignore'],
    timeout: 10_000,
  });
}

function listNetns(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 });
  if (r.status !== 0) return [];
  // Lines read "NAME" or "NAME (id: N)".
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '');
}

/** A namespace of this process: deleted when it exits. */
export function ownNamespace(ns: string): void {
  liveNamespaces.add(ns);
}

/** A namespace this process deleted itself. */
export function disownNamespace(ns: string): void {
  liveNamespaces.delete(ns);
}

/** Gives a prefix up (its topology is destroyed). */
export function releasePrefix(prefix: string): void {
  ownedPrefixes.delete(prefix);
  rmSync(ownerFile(prefix), { force: true });
}

function readdirOr(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Deletes the namespaces of topologies whose owning process is gone (a run that was SIGKILLed). */
export function reapStaleTopologies(): void {
  let entries: string[];
  try {
    entries = readdirSync(ownerDir);
  } catch {
    return;
  }
  let names: string[] | undefined;
  for (const entry of entries) {
    const prefix = entry.replace(/\.owner$/, '');
    if (prefix === entry || !prefixPattern.test(prefix)) continue;
    if (ownerAlive(readFileOr(join(ownerDir, entry), ''))) continue;
    names ??= listNetns();
    const stale = names.filter((n) => n.startsWith(`${prefix}-`));
    if (stale.length > 0) deleteNetnsSync(stale);
    // Its process logs, which a SIGKILLed owner could not remove either.
    for (const d of readdirOr(tmpdir())) if (d.startsWith(`${prefix}-logs-`)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
    rmSync(join(ownerDir, entry), { force: true });
  }
}

function readFileOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}
