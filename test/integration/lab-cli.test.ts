// The lab's command line as people meet it before a lab runs: help, the root requirement said
// plainly, and clear errors instead of stack traces.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { repoRoot } from '../harness/plugin.js';

const labJs = join(repoRoot, 'dist', 'lab.js');

function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('lab command line', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'lab-cli-'));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('--help lists up, down, status, restart-node and reboot-node', async () => {
    const r = await run([process.execPath, labJs, '--help']);
    assert.equal(r.code, 0);
    for (const c of ['up', 'down', 'status', 'restart-node <node>', 'reboot-node <node>', 'demo']) assert.match(r.stdout, new RegExp(`lab ${c}`));
  });

  it('up as a normal user says it needs root, without a stack trace', async () => {
    const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, labJs, '--state-dir', join(stateDir, 'x'), 'up']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: lab up needs root: the lab's nodes and pods are network namespaces\n {2}run it as root, e\.g\. sudo make lab-up\n$/);
  });

  it('status and restart-node without a running lab say so', async () => {
    for (const args of [['status'], ['restart-node', 'kind-worker']]) {
      const r = await run([process.execPath, labJs, '--state-dir', stateDir, ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^error: no lab is running \(state directory .*\)\n {2}start one with: sudo make lab-up\n$/);
    }
  });

  it('refuses a bad value with one line naming it and exit 2, before anything else (no root needed)', async () => {
    const cases: [string[], RegExp][] = [
      [['up', '--nodes', '10x'], /^error: --nodes "10x": expected a whole number from 1 to 50\n$/],
      [['up', '--nodes', '0'], /^error: --nodes "0": expected a whole number from 1 to 50\n$/],
      [['up', '--legacy', 'cilium'], /^error: --legacy "cilium": expected flannel or calico\n$/],
      [['restart-node', ''], /^error: node "": expected a node name \(a DNS-1123 subdomain/],
      [['drop-udp', 'kind-worker', '70000'], /^error: port "70000": expected a port number from 1 to 65535\n$/],
      [['restore-udp', 'Kind_Worker', '8473'], /^error: node "Kind_Worker": expected a node name/],
    ];
    for (const [args, message] of cases) {
      const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, labJs, '--state-dir', join(stateDir, 'y'), ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
  });

  it('an unknown command is a usage error (exit 2)', async () => {
    const r = await run([process.execPath, labJs, 'bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown argument: bogus/);
  });
  it('up and down never remove a directory without the lab\'s marker, and up refuses one that holds anything', async () => {
    const foreign = mkdtempSync(join(tmpdir(), 'not-a-lab-'));
    try {
      writeFileSync(join(foreign, 'precious.txt'), 'keep me\n');
      const down = await run([process.execPath, labJs, '--state-dir', foreign, 'down']);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(readFileSync(join(foreign, 'precious.txt'), 'utf8'), 'keep me\n');
      const up = await run([process.execPath, labJs, '--state-dir', foreign, 'up']);
      assert.equal(up.code, 1);
      assert.match(up.stderr, /^error: .*not-a-lab-.* exists and is not a lab's state directory \(it has no \.cilium-migrate-lab\)\n/);
      assert.deepEqual(readdirSync(foreign), ['precious.txt'], 'nothing added, nothing removed');
    } finally {
      rmSync(foreign, { recursive: true, force: true });
    }
  });
});
