// The agent's configuration: defaults, environment variables, and refusals that name the flag.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAgentCommandLine, parseAgentConfig } from '../../agent/config.js';
import { ExitCode, UsageError } from '../../lib/errors.js';

const env = { NODE_NAME: 'kind-worker', POD_NAME: 'agent-x', POD_NAMESPACE: 'cilium-migrate', POD_IP: '10.244.1.5' };

describe('parseAgentConfig', () => {
  it('takes the identity from the downward-API variables and sane defaults', async () => {
    const cfg = await parseAgentConfig([], env);
    assert.deepEqual([cfg.node, cfg.pod, cfg.namespace, cfg.ip], ['kind-worker', 'agent-x', 'cilium-migrate', '10.244.1.5']);
    // The legacy range is not needed to classify (anything outside Cilium's CIDRs is legacy): none by default.
    assert.deepEqual(cfg.legacyCidrs, []);
    assert.deepEqual(cfg.ciliumCidrs, ['10.245.0.0/16']);
    assert.equal(cfg.intervalMs, 5000);
    assert.equal(cfg.port, 8080);
    assert.deepEqual(cfg.protocols, ['icmp', 'http']);
  });

  it('takes the legacy CIDRs (Calico\'s pools here) from LEGACY_CIDRS when they are given', async () => {
    const cfg = await parseAgentConfig([], { ...env, LEGACY_CIDRS: '192.168.0.0/16, 10.42.0.0/16' });
    assert.deepEqual(cfg.legacyCidrs, ['192.168.0.0/16', '10.42.0.0/16']);
  });

  it('lets flags override the environment and adds the large-packet probe when sized', async () => {
    const cfg = await parseAgentConfig(['--interval', '2s', '--large-packet-size', '1400', '--cilium-cidrs', '10.245.0.0/16,10.246.0.0/16'], { ...env, PROBE_INTERVAL: '9s' });
    assert.equal(cfg.intervalMs, 2000);
    assert.deepEqual(cfg.protocols, ['icmp', 'http', 'icmp-large']);
    assert.equal(cfg.ciliumCidrs.length, 2);
  });

  it('takes the probes to send and the focus share of the probe budget', async () => {
    const cfg = await parseAgentConfig(['--protocols', 'http'], { ...env, PROBE_FOCUS_SHARE: '0.5' });
    assert.deepEqual(cfg.protocols, ['http']);
    assert.equal(cfg.focusShare, 0.5);
    assert.equal((await parseAgentConfig([], env)).focusShare, 0.6);
  });

  it('--version and --help need no configuration (no POD_IP, no node name) and ask for nothing else', async () => {
    const log = console.log;
    const printed: string[] = [];
    console.log = (...a: unknown[]) => void printed.push(a.join(' '));
    try {
      assert.deepEqual(await parseAgentCommandLine(['--version'], {}), { kind: 'shown' });
      assert.deepEqual(await parseAgentCommandLine(['--help'], {}), { kind: 'shown' });
    } finally {
      console.log = log;
    }
    assert.match(printed[0]!, /^\d+\.\d+\.\d+/);
    assert.match(printed[1]!, /cilium-migrate-agent \[flags\]/);
  });

  // Every bad value is a usage error (exit 2) whose one line names the flag and the form it takes,
  // also when it comes from the environment variable the DaemonSet sets.
  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['a missing pod IP', [], { ...env, POD_IP: '' }, /--pod-ip is required \(or POD_IP\)/],
    ['a pod IP that is no IP', [], { ...env, POD_IP: 'ten.two' }, /--pod-ip "ten.two": expected an IP address/],
    ['a bad CIDR', ['--legacy-cidrs', '10.244.0.0/99'], env, /--legacy-cidrs "10.244.0.0\/99": expected one or more|--legacy-cidrs "10.244.0.0\/99": expected a pod CIDR/],
    ['a CIDR that is not a network address', ['--cilium-cidrs', '10.245.1.7/16'], env, /--cilium-cidrs "10.245.1.7\/16": expected a pod CIDR like 10.245.0.0\/16/],
    ['a Cilium CIDR overlapping the legacy one', ['--cilium-cidrs', '10.244.128.0/17'], { ...env, LEGACY_CIDRS: '10.244.0.0/16' }, /--cilium-cidrs "10.244.128.0\/17": expected a range that does not overlap --legacy-cidrs 10.244.0.0\/16/],
    ['a bad duration', ['--interval', 'soon'], env, /--interval "soon": expected a duration from 100ms to 1h/],
    ['a negative duration', ['--interval=-5s'], env, /--interval "-5s": expected a duration/],
    ['a timeout not shorter than the interval', ['--interval', '1s', '--timeout', '1s'], env, /--timeout \(1s\) must be shorter than --interval \(1s\)/],
    ['a port out of range', ['--port', '70000'], env, /--port "70000": expected a port number from 1 to 65535/],
    ['a port that is no number, from the environment', [], { ...env, AGENT_PORT: '80x' }, /--port "80x": expected a port number/],
    ['a probe rate that is no whole number', ['--max-probes-per-second', '1.5'], env, /--max-probes-per-second "1.5": expected a whole number from 1 to 100000/],
    ['a jitter above 0.9', ['--jitter', '0.95'], env, /--jitter "0.95": expected a number from 0 to 0.9/],
    ['a node name that is no DNS name', [], { ...env, NODE_NAME: 'Kind_Worker' }, /--node-name "Kind_Worker": expected a node name/],
    ['a bad label selector', ['--agent-selector', 'app in (x'], env, /--agent-selector "app in \(x": expected a label selector/],
    ['an unknown flag', ['--probe-everything'], env, /Unknown argument/],
    ['an unknown probe', ['--protocols', 'icmp,udp'], env, /--protocols "icmp,udp": expected one or more of icmp, http, comma-separated/],
    ['no probe at all, from the environment', [], { ...env, PROBE_PROTOCOLS: ',' }, /--protocols ",": expected one or more of icmp, http/],
    ['a focus share of nothing', ['--focus-probe-share', '0'], env, /--focus-probe-share "0": expected a number above 0 and at most 1/],
    ['a focus share above the budget', ['--focus-probe-share', '1.5'], env, /--focus-probe-share "1.5": expected a number above 0 and at most 1/],
  ];
  for (const [name, argv, e, message] of bad) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(parseAgentConfig(argv, e), (err: unknown) => err instanceof UsageError && err.exitCode === ExitCode.usage && message.test(err.message) && !err.message.includes('\n'));
    });
  }
});
