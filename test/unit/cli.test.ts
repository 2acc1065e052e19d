// The command line without a cluster: help, version, usage errors and exit codes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeArgv, runCli } from '../../cmd/cli.js';
import type { Io } from '../../cmd/context.js';
import { ExitCode } from '../../lib/errors.js';
import { version } from '../../lib/version.js';

function captureIo(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    isTTY: false,
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
  };
  return io;
}

const noKubeconfig = { env: {}, home: '/nonexistent-home', exists: () => false };

async function run(args: string[]) {
  const io = captureIo();
  // yargs prints help and version through console.log; capture that too.
  const log = console.log;
  console.log = (...a: unknown[]) => io.out(a.join(' ') + '\n');
  try {
    const code = await runCli(args, io, new AbortController().signal, noKubeconfig);
    return { code, ...io };
  } finally {
    console.log = log;
  }
}

describe('runCli', () => {
  it('prints help with exit 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, ExitCode.ok);
    assert.match(r.stdout, /kubectl cilium-migrate <command>/);
    assert.match(r.stdout, /version +Print the plugin version/);
  });

  it('prints the version with exit 0', async () => {
    const r = await run(['--version']);
    assert.equal(r.code, ExitCode.ok);
    assert.equal(r.stdout.trim(), version);
  });

  it('asks for a command when none is given (exit 2)', async () => {
    const r = await run([]);
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /error: name a command/);
  });

  it('rejects an unknown flag (exit 2, one line)', async () => {
    const r = await run(['version', '--client', '--bogus-flag']);
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /^error: Unknown argument: bogus-flag \(see kubectl cilium-migrate --help\)\n$/);
  });

  it('rejects an unknown output format (exit 2, one line naming the choices)', async () => {
    const r = await run(['version', '--client', '-o', 'xml']);
    assert.equal(r.code, ExitCode.usage);
    assert.equal(r.stderr, 'error: --output "xml": expected one of table, wide, json, yaml\n');
  });

  it('-v alone means level 1 and never swallows the command after it', async () => {
    const before = await run(['-v', 'version', '--client', '-o', 'json']);
    assert.equal(before.code, ExitCode.ok, before.stderr);
    assert.deepEqual(JSON.parse(before.stdout), { clientVersion: version });
    const after = await run(['version', '-v']);
    assert.equal(after.code, ExitCode.config);
    // Level 1 shows an error's cause: here, none; the point is that -v parsed as a level.
    assert.match(after.stderr, /^error: no kubeconfig found/);
  });

  it('reads -v N, -v=N and --verbose N as levels, and refuses a level that is no number', async () => {
    for (const args of [['-v', '4'], ['-v=4'], ['--verbose', '4'], ['--verbose=4']]) assert.equal((await run([...args, 'version', '--client'])).code, ExitCode.ok, args.join(' '));
    const bad = await run(['--verbose=loud', 'version', '--client']);
    assert.equal(bad.code, ExitCode.usage);
    assert.match(bad.stderr, /^error: --verbose "loud": expected a whole number from 0 to 10\n$/);
  });

  it('keeps a value starting with "-" with its flag, for its parser to judge', () => {
    assert.deepEqual(normalizeArgv(['node', 'w1', '--drain-timeout', '-5s']), ['node', 'w1', '--drain-timeout=-5s']);
    assert.deepEqual(normalizeArgv(['node', 'w1', '--grace-period', '-1', '--dry-run']), ['node', 'w1', '--grace-period=-1', '--dry-run']);
    // A flag after a flag that takes a value stays a flag: the first one is left empty (and refused).
    assert.deepEqual(normalizeArgv(['node', 'w1', '--label-key', '--dry-run']), ['node', 'w1', '--label-key', '--dry-run']);
    assert.deepEqual(normalizeArgv(['status', '--label-key', '-n', 'x']), ['status', '--label-key', '-n', 'x']);
    assert.deepEqual(normalizeArgv(['-v', 'node', 'w1']), ['--verbose=1', 'node', 'w1']);
    assert.deepEqual(normalizeArgv(['node', 'w1', '-v', '3']), ['node', 'w1', '--verbose=3']);
  });

  it('renders version --client as json and yaml', async () => {
    const json = await run(['version', '--client', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout), { clientVersion: version });
    const yaml = await run(['version', '--client', '-o', 'yaml']);
    assert.equal(yaml.stdout, `clientVersion: ${version}\n`);
  });

  it('needs no kubeconfig for --client, and exits 3 without one otherwise', async () => {
    assert.equal((await run(['version', '--client'])).code, ExitCode.ok);
    const r = await run(['version']);
    assert.equal(r.code, ExitCode.config);
    assert.match(r.stderr, /^error: no kubeconfig found/);
    assert.match(r.stderr, /hint: pass --kubeconfig FILE/);
  });
});
