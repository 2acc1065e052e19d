// Nothing a control plane starts outlives it: not after stop(), not after SIGINT or SIGTERM to
// the process that started it, and not (after the next start reaps it) after SIGKILL.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pidsMentioning, reapStaleControlPlanes, startControlPlane } from '../../lab/control-plane.js';
import { eventually } from '../harness/wait.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'hold-control-plane.ts');

interface Held {
  rootDir: string;
  pids: number[];
  ports: Record<string, number>;
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

async function assertGone(held: Held): Promise<void> {
  await eventually('every process of the control plane gone', async () => (pidsMentioning(held.rootDir).length === 0 ? true : undefined), 20_000);
  // A killed process loses its command line before the kernel closes its sockets: wait for both.
  for (const [name, port] of Object.entries(held.ports)) {
    await eventually(`${name} port ${port} closed`, async () => ((await portRefuses(port)) ? true : undefined), 10_000, 50);
  }
}

async function holdInChild(): Promise<{ held: Held; child: ReturnType<typeof spawn>; exited: Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fixture exited early (${code})`)));
  });
  return { held: JSON.parse(line) as Held, child, exited };
}

describe('control plane lifecycle', () => {
  it('stop() leaves no process, no listening port and no file behind', async () => {
    const cp = await startControlPlane();
    const held: Held = { rootDir: cp.rootDir, pids: cp.pids(), ports: { ...cp.ports } };
    assert.equal(held.pids.length, 5, 'etcd, apiserver, controller manager, scheduler and kwok ran');
    assert.deepEqual(pidsMentioning(cp.rootDir).sort(), [...held.pids].sort(), 'the processes found by their directory are the ones started');
    await cp.stop();
    await assertGone(held);
    assert.equal(existsSync(held.rootDir), false, 'the temporary directory is removed');
    await cp.stop(); // a second stop is harmless
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`cleans up everything when the process running it gets ${signal}`, async () => {
      const { held, child, exited } = await holdInChild();
      assert.ok(pidsMentioning(held.rootDir).length >= 5, 'the control plane runs');
      child.kill(signal);
      await exited;
      await assertGone(held);
      assert.equal(existsSync(held.rootDir), false, 'the temporary directory is removed');
    });
  }

  it('after SIGKILL of its owner, the processes die with it and the next start reaps the directory', async () => {
    const { held, child, exited } = await holdInChild();
    child.kill('SIGKILL');
    await exited;
    await assertGone(held);
    assert.ok(existsSync(held.rootDir), 'a SIGKILLed owner cannot remove its directory itself');
    reapStaleControlPlanes();
    assert.equal(existsSync(held.rootDir), false, 'the stale directory is reaped');
  });
});
