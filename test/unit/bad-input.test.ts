// Every value a person can type into every command, walked as a table: each bad one is refused
// with exit 2 and one line naming the flag and the form it takes, before any connection. The
// kubeconfig points at a local TCP listener that counts connections (it answers none), so a
// command that would reach out before validating is caught. A completeness check makes sure no
// flag that takes a value is left out of the table.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import yargs, { type Argv } from 'yargs';
import { commands, runCli } from '../../cmd/cli.js';
import type { GlobalOptions, Io } from '../../cmd/context.js';
import { ExitCode } from '../../lib/errors.js';

/** Bad values per flag (and positional); every flag that takes a value must be here. */
const badValues: Record<string, string[]> = {
  // counts and ports
  'parallelism': ['10x', '0', '1.5', '101'],
  'grace-period': ['abc', '-2', '1e3'],
  'skip-wait-for-delete-timeout': ['-1', '5s'],
  'max-unavailable': ['0', 'all'],
  'gate-rounds': ['0', 'two'],
  'min-samples': ['0', '3.5'],
  'concurrency': ['0', '1000'],
  'rounds': ['0', 'x'],
  'max-grid': ['-1', 'lots'],
  'agent-port': ['0', '65536', '80x'],
  'tunnel-port': ['0', '70000', 'vxlan'],
  'legacy-tunnel-port': ['-1', '8472x'],
  'verbose': ['x', '11'],
  // ratios
  'success-threshold': ['0', '1.5', '95%'],
  // durations
  'drain-timeout': ['-5s', '0s', '10x', '25h'],
  'restart-timeout': ['-1s', 'forever'],
  'agent-restart-timeout': ['0', '5 m'],
  'verify-timeout': ['1d', ''],
  'gate-interval': ['100ms', '2h'],
  'gate-timeout': ['0s', 'x'],
  'lock-ttl': ['1s', '2h'],
  'request-timeout': ['10ms', '1h'],
  'interval': ['10ms', '0'],
  'since': ['soon', '-5s', '2026-13-01T00:00:00Z'],
  'host-command-timeout': ['0', '2h'],
  'rollout-timeout': ['-10m', 'x'],
  'cleanup-timeout': ['0', '61m'],
  // CIDRs
  'cilium-cidr': ['10.245.0.0', '10.245.1.7/16', '10.245.0.0/28', 'nope'],
  'legacy-cidr': ['10.244.0.0/99', '0.0.0.0/0'],
  'service-cidr': ['10.96.0.0/31', 'x'],
  // names and selectors
  'nodes': ['', 'W1', 'w_1', 'a..b'],
  'node': ['', 'Kind-Worker'],
  'focus': ['', 'A'],
  'namespace': ['Kube-System', 'a.b'],
  'cilium-namespace': ['', 'kube_system'],
  'agent-namespace': ['Cilium-Migrate'],
  'verify-namespace': ['default.x'],
  'label-key': ['', 'a/b/c', '-x'],
  'name': ['Cilium_Default', ''],
  'pod-selector': ['app in (x', 'app=web,', ''],
  'agent-selector': ['=x', '!'],
  'helm-release': ['Cilium', 'a'.repeat(54)],
  'helm-chart': [''],
  'cilium-version': ['latest', '1', ''],
  // images, commands, addresses
  'verify-image': ['', 'pause 3.10'],
  'host-image': ['Alpine', 'alpine@sha256:abc'],
  'image': ['Cilium-Migrate', 'cilium-migrate-agent@sha256:abc', ''],
  'restart-command': ['sudo reboot', ''],
  'serve': ['localhost', ':70000'],
  // choices
  'restart': ['reboots', ''],
  'gate': ['magic'],
  'phase': ['middle'],
  'output': ['xml'],
};

/** Flags whose value is a path or a name looked up elsewhere: nothing to parse at the edge. */
const freeText = new Set(['kubeconfig', 'context', 'file', 'html', 'agent-manifests']);

/** How each command is called when all its other inputs are fine. */
const base: Record<string, string[]> = {
  preflight: ['preflight'],
  values: ['values', '--phase', 'initial', '--cilium-version', '1.16.3'],
  prepare: ['prepare'],
  plan: ['plan'],
  node: ['node', 'kind-worker', '--restart', 'none'],
  run: ['run', '--restart', 'none'],
  status: ['status'],
  connectivity: ['connectivity'],
  rollback: ['rollback', 'kind-worker', '--restart', 'none'],
  finalize: ['finalize'],
  version: ['version'],
};

/** Bad combinations of good values, refused before any connection as well. */
const badCombinations: [string, string[], RegExp][] = [
  ['node', ['--grace-period', '0'], /--grace-period "0".*needs --force/],
  ['rollback', ['--grace-period', '0'], /--grace-period "0".*needs --force/],
  ['node', ['--restart', 'exec'], /--restart exec needs --restart-command/],
  ['run', ['--restart', 'exec'], /--restart exec needs --restart-command/],
  ['rollback', ['--restart', 'exec'], /--restart exec needs --restart-command/],
  ['node', ['--restart-command', 'ssh {node} sudo reboot'], /--restart-command needs --restart exec/],
  ['node', ['--restart', 'reboot'], /--restart reboot .* needs --yes/],
  ['run', ['--restart', 'reboot'], /--restart reboot .* needs --yes/],
  ['run', ['--in-cluster', '--restart', 'kind'], /--in-cluster needs --restart reboot, exec or none/],
  ['run', ['--in-cluster', '--restart', 'exec'], /--restart exec needs --restart-command/],
  ['run', ['--attach'], /--attach is for the in-cluster run: add --in-cluster/],
  ['run', ['--cancel'], /--cancel is for the in-cluster run: add --in-cluster/],
  ['run', ['--in-cluster', '--attach', '--cancel'], /--attach and --cancel: choose one/],
  ['values', ['--cilium-cidr', '10.244.128.0/17'], /--cilium-cidr "10.244.128.0\/17": expected a range that does not overlap --legacy-cidr 10.244.0.0\/16/],
  ['finalize', ['--cleanup-nodes'], /--cleanup-nodes .* needs --yes/],
  ['connectivity', ['--watch', '-o', 'json'], /--watch draws for people/],
];

function captureIo(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', isTTY: false, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

describe('bad input, every command: exit 2, one line, no connection', () => {
  let server: Server;
  let connections = 0;
  let dir: string;
  let kubeconfig: string;
  const environment = { env: {}, home: '/nonexistent-home', exists: existsSync };

  before(async () => {
    // Counts every connection and closes it at once: a command that reaches it fails fast.
    server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'bad-input-'));
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
  });
  after(() => {
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = async (args: string[]) => {
    const io = captureIo();
    const log = console.log;
    console.log = (...a: unknown[]) => io.out(a.join(' ') + '\n');
    try {
      const code = await runCli([...args, '--kubeconfig', kubeconfig], io, new AbortController().signal, environment);
      return { code, ...io };
    } finally {
      console.log = log;
    }
  };

  const refused = async (args: string[], names: RegExp) => {
    const before = connections;
    const r = await run(args);
    assert.equal(r.code, ExitCode.usage, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: [^\n]+\n$/, `${args.join(' ')}: one line, no hint, no stack:\n${r.stderr}`);
    assert.match(r.stderr, names, args.join(' '));
    assert.equal(connections, before, `${args.join(' ')} connected before refusing`);
  };

  it('connects for good input (the listener sees what a command does)', async () => {
    for (const args of [['version'], base.node!, base.values!.concat(['--cilium-cidr', '10.245.0.0/16'])]) {
      const before = connections;
      const r = await run(args);
      if (args[0] === 'values') {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(connections, before, 'values never connects');
      } else {
        assert.equal(r.code, ExitCode.unreachable, r.stderr);
        assert.ok(connections > before, `${args.join(' ')} connected`);
      }
    }
  });

  it('has a bad value for every flag and positional that takes one, in every command', () => {
    const missing: string[] = [];
    for (const spec of commands) {
      const name = String(spec.command).split(' ')[0]!;
      const options = (spec.builder(yargs([]) as unknown as Argv<GlobalOptions>) as unknown as { getOptions(): { key: Record<string, unknown>; boolean: string[] } }).getOptions();
      for (const flag of Object.keys(options.key)) {
        if (options.boolean.includes(flag) || freeText.has(flag) || flag === 'f') continue;
        if (!badValues[flag]) missing.push(`${name} --${flag}`);
      }
      if (!base[name]) missing.push(`${name} (no base invocation)`);
    }
    assert.deepEqual(missing, []);
  });

  for (const spec of commands) {
    const name = String(spec.command).split(' ')[0]!;
    it(`${name}: refuses every bad value of every flag`, async () => {
      const options = (spec.builder(yargs([]) as unknown as Argv<GlobalOptions>) as unknown as { getOptions(): { key: Record<string, unknown>; boolean: string[] } }).getOptions();
      const flags = [...Object.keys(options.key).filter((f) => !options.boolean.includes(f) && !freeText.has(f) && f !== 'f'), 'namespace', 'verbose', 'output'];
      for (const flag of flags) {
        for (const value of badValues[flag] ?? []) {
          if (flag === 'nodes' || flag === 'node') {
            await refused([...base[name]!.slice(0, 1), value, ...base[name]!.slice(2)], /^error: node "/);
          } else if (flag === 'focus') {
            await refused([...base[name]!, '--focus', 'kind-worker', '--focus', value], /^error: --focus "/);
          } else if (flag === 'verbose' || flag === 'output') {
            await refused([...base[name]!, `--${flag}=${value}`], new RegExp(`--${flag}|Invalid values`));
          } else {
            // Both spellings: "--flag value" and "--flag=value" (a value starting with '-' too).
            await refused([...base[name]!, `--${flag}`, value], new RegExp(`--${flag}|Invalid values:\\n?.*${flag}`));
            await refused([...base[name]!, `--${flag}=${value}`], new RegExp(`--${flag}|Invalid values:\\n?.*${flag}`));
          }
        }
      }
    });
  }

  for (const [command, extra, message] of badCombinations) {
    it(`${command} ${extra.join(' ')}: refused before any connection`, async () => refused([...base[command]!, ...extra], message));
  }

  it('run --in-cluster without --restart: refused before any connection (the run pod cannot guess a kind restart)', async () => {
    await refused(['run', '--in-cluster'], /^error: --in-cluster needs --restart reboot, exec or none /);
    await refused(['run', '--in-cluster', '--restart', 'none', '--image', 'x y'], /^error: --image "x y": expected an image reference/);
  });

  it('the cases of the issue: --parallelism 10x, --grace-period abc, an empty node name, --drain-timeout=-5s', async () => {
    await refused(['node', 'w1', '--parallelism', '10x'], /^error: --parallelism "10x": expected a whole number from 1 to 100\n$/);
    await refused(['node', 'w1', '--grace-period', 'abc'], /^error: --grace-period "abc": expected a whole number from -1 to 86400\n$/);
    await refused(['node', ''], /^error: node "": expected a node name/);
    await refused(['node', 'w1', '--drain-timeout=-5s'], /^error: --drain-timeout "-5s": expected a duration from 1s to 24h/);
    await refused(['node', 'w1', '--drain-timeout', '-5s'], /^error: --drain-timeout "-5s": expected a duration from 1s to 24h/);
  });
});
