// The agent's configuration: defaults, environment variables, and refusals that name the flag.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAgentConfig } from '../../agent/config.js';
import { ConfigError } from '../../lib/errors.js';

const env = { NODE_NAME: 'kind-worker', POD_NAME: 'agent-x', POD_NAMESPACE: 'cilium-migrate', POD_IP: '10.244.1.5' };

describe('parseAgentConfig', () => {
  it('takes the identity from the downward-API variables and sane defaults', async () => {
    const cfg = await parseAgentConfig([], env);
    assert.deepEqual([cfg.node, cfg.pod, cfg.namespace, cfg.ip], ['kind-worker', 'agent-x', 'cilium-migrate', '10.244.1.5']);
    // The legacy range is not needed to classify (anything outside Cilium's CIDRs is legacy): none by default.
    assert.deepEqual(cfg.legacyCidrs, []);
    assert.deepEqual(cfg.ciliumCidrs, ['10.245.0.0/16']);
    assert.equal(cfg.intervalMs, 5000);
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

  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['a missing pod IP', [], { ...env, POD_IP: '' }, /--pod-ip is required \(or POD_IP\)/],
    ['a pod IP that is no IP', [], { ...env, POD_IP: 'ten.two' }, /--pod-ip: "ten.two" is not an IP address/],
    ['a bad CIDR', ['--legacy-cidrs', '10.244.0.0/99'], env, /--legacy-cidrs: "10.244.0.0\/99" is not a CIDR/],
    ['a bad duration', ['--interval', 'soon'], env, /--interval: "soon" is not a duration/],
    ['a timeout not shorter than the interval', ['--interval', '1s', '--timeout', '1s'], env, /--timeout \(1s\) must be shorter than --interval \(1s\)/],
    ['a port out of range', ['--port', '70000'], env, /--port must be a number between 0 and 65535/],
    ['an unknown flag', ['--probe-everything'], env, /Unknown argument/],
    ['an unknown probe', ['--protocols', 'icmp,udp'], env, /--protocols: unknown udp/],
    ['a focus share of nothing', ['--focus-probe-share', '0'], env, /--focus-probe-share must be above 0/],
    ['a focus share above the budget', ['--focus-probe-share', '1.5'], env, /--focus-probe-share must be a number between 0 and 1/],
  ];
  for (const [name, argv, e, message] of bad) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(parseAgentConfig(argv, e), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }
});
