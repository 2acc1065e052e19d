// One parser per kind of value: what each accepts and what it refuses, as tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  choiceList, cidr, cidrList, ciliumVersion, duration, flagCoercion, gracePeriod, imageReference, integer, labelKey, labelSelector, listCoercion, listenAddress,
  namespace, nodeName, parseDuration, podCidrLimits, port, ratio, refuseOverlap, requireCompanion, restartCommandTemplate, serviceCidrLimits, timestamp, ValueError, type Parser,
} from '../../lib/flag-values.js';
import { ExitCode, UsageError } from '../../lib/errors.js';

function table<T>(name: string, parse: Parser<T>, good: [string, T][], bad: string[]) {
  describe(name, () => {
    for (const [text, value] of good) it(`takes ${JSON.stringify(text)}`, () => assert.deepEqual(parse(text), value));
    for (const text of bad) it(`refuses ${JSON.stringify(text)}`, () => assert.throws(() => parse(text), ValueError));
  });
}

table('integer(1, 100)', integer(1, 100), [['1', 1], ['10', 10], [' 100 ', 100]], ['', '0', '101', '10x', 'NaN', '1.5', '1e2', '0x10', '-1', 'ten']);
table('integer(-1, 86400) (grace periods)', integer(-1, 86400), [['-1', -1], ['0', 0], ['30', 30]], ['-2', 'abc', '', '86401']);
table('port', port, [['1', 1], ['8473', 8473], ['65535', 65535]], ['0', '65536', '80x', '', '-1']);
table('ratio', ratio(), [['0', 0], ['0.95', 0.95], ['1', 1], ['.5', 0.5]], ['1.01', '-0.1', '95%', '', 'abc', 'NaN', 'Infinity']);
table('ratio above zero', ratio({ aboveZero: true }), [['0.5', 0.5], ['1', 1]], ['0', '0.0']);
table('duration(1s, 24h)', duration(1000, 86_400_000), [['90s', 90_000], ['10m', 600_000], ['1h30m', 5_400_000], ['600', 600_000], ['24h', 86_400_000]], ['', '-5s', '0s', '0', '500ms', '25h', '10x', '5 m', 'soon', '1d']);
describe('parseDuration (the one duration parser every duration flag uses)', () => {
  const cases: [string, number][] = [['90s', 90_000], ['10m', 600_000], ['1h30m', 5_400_000], ['600', 600_000], ['1.5s', 1500], ['250ms', 250], ['2m30s', 150_000]];
  for (const [text, ms] of cases) it(`${text} = ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  for (const bad of ['', 'ten', '10x', '5m garbage', '-1s']) it(`is not "${bad}"`, () => assert.equal(parseDuration(bad), undefined));
});
table('timestamp', timestamp, [['2026-11-24T10:00:00Z', new Date('2026-11-24T10:00:00Z')], ['2026-11-24T10:00:00.5+01:00', new Date('2026-11-24T09:00:00.500Z')]], ['2026-11-24', 'yesterday', '2026-13-40T99:00:00Z']);
table('nodeName (DNS-1123 subdomain)', nodeName, [['kind-worker', 'kind-worker'], ['ip-10-0-1-2.eu-west-1.compute.internal', 'ip-10-0-1-2.eu-west-1.compute.internal'], ['a'.repeat(253).replace(/(.{63})/g, '$1.').replace(/\.$/, '').slice(0, 253).replace(/\.$/, 'a'), 'a'.repeat(253).replace(/(.{63})/g, '$1.').replace(/\.$/, '').slice(0, 253).replace(/\.$/, 'a')]], ['', 'Kind-Worker', 'kind_worker', '-w1', 'w1-', 'w1..w2', 'a'.repeat(254), 'w 1', '*']);
table('namespace (DNS-1123 label)', namespace, [['kube-system', 'kube-system'], ['a', 'a']], ['', 'Kube-System', 'kube.system', 'a'.repeat(64), '-ns']);
table('labelKey', labelKey, [['io.cilium.migration/cilium-default', 'io.cilium.migration/cilium-default'], ['app', 'app'], ['A_b.c-1', 'A_b.c-1']], ['', '/x', 'x/', 'Example.com/x', 'a/b/c', 'x'.repeat(64), '-x']);
table('labelSelector', labelSelector, [
  ['app=web', 'app=web'], ['app==web,tier!=db', 'app==web,tier!=db'], ['env in (a, b),!legacy', 'env in (a, b),!legacy'], ['app', 'app'], ['env notin (x)', 'env notin (x)'], ['k8s-app=cilium', 'k8s-app=cilium'], ['a > 3', 'a > 3'], ['app=', 'app='],
], ['', ' ', 'app=web,', '=web', 'env in (a', 'env in a,b)', 'app=we b', 'app=web=1', '!', 'a,,b', 'Bad Key=1', '(a)']);
table('imageReference', imageReference, [['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'], ['alpine', 'alpine'], [`alpine:3.20@sha256:${'a'.repeat(64)}`, `alpine:3.20@sha256:${'a'.repeat(64)}`]], ['', 'alpine 3', 'Alpine', 'alpine@sha256:abc', ' alpine']);
table('ciliumVersion', ciliumVersion, [['1.16', '1.16'], ['1.16.3', '1.16.3'], ['v1.18.0-rc.1', 'v1.18.0-rc.1']], ['', '1', 'latest', '1.16.x']);
table('restartCommandTemplate', restartCommandTemplate, [['ssh {node} sudo systemctl reboot', 'ssh {node} sudo systemctl reboot']], ['', 'sudo reboot', '{node}']);
table('cidr (pod networks)', cidr(podCidrLimits), [['10.245.0.0/16', '10.245.0.0/16'], ['10.0.0.0/8', '10.0.0.0/8'], ['fd00:10:245::/56', 'fd00:10:245::/56']], ['', '10.245.1.7/16', '10.245.0.0/24', '10.245.0.0/28', '0.0.0.0/0', '10.0.0.0/7', '10.245.0.0', '10.245.0.0/99', '300.1.0.0/16', 'fd00::/16']);
table('cidr (service networks)', cidr(serviceCidrLimits), [['10.96.0.0/12', '10.96.0.0/12'], ['10.96.0.0/24', '10.96.0.0/24']], ['10.96.0.0/30', '10.96.0.1/12']);
table('cidrList', cidrList(podCidrLimits), [['10.244.0.0/16', ['10.244.0.0/16']], ['10.244.0.0/16, 10.42.0.0/16', ['10.244.0.0/16', '10.42.0.0/16']]], ['', ',', '10.244.0.0/16,oops']);
table('choiceList', choiceList(['icmp', 'http']), [['icmp', ['icmp']], ['http, icmp', ['http', 'icmp']], ['icmp,icmp', ['icmp']]], ['', ',', 'udp', 'icmp,udp', 'ICMP']);
table('listenAddress', listenAddress, [[':8080', { host: '127.0.0.1', port: 8080 }], ['0.0.0.0:9000', { host: '0.0.0.0', port: 9000 }], ['[::1]:0', { host: '::1', port: 0 }]], ['localhost', ':70000', '', 'a:b']);

describe('the refusal', () => {
  it('is a usage error (exit 2) on one line that names the flag, the text given and the form expected', () => {
    const coerce = flagCoercion('parallelism', integer(1, 100));
    assert.throws(() => coerce('10x'), (e: unknown) => e instanceof UsageError && e.exitCode === ExitCode.usage && e.message === '--parallelism "10x": expected a whole number from 1 to 100' && e.hint === undefined);
  });
  it('takes the last of a repeated flag, as kubectl does, and leaves an absent one undefined', () => {
    const coerce = flagCoercion('parallelism', integer(1, 100));
    assert.equal(coerce(['3', '7']), 7);
    assert.equal(coerce(undefined), undefined);
    assert.throws(() => coerce(['3', 'x']), /--parallelism "x"/);
  });
  it('names a positional by its name and checks every item of a list', () => {
    assert.deepEqual(listCoercion('node', nodeName)(['w1', 'w2']), ['w1', 'w2']);
    assert.throws(() => listCoercion('node', nodeName)(['w1', '']), (e: unknown) => e instanceof UsageError && /^node "": expected a node name/.test(e.message));
  });
});

describe('rules between flags', () => {
  it('--grace-period 0 only with --force, as kubectl delete; -1 keeps each pod\'s own', () => {
    assert.throws(() => gracePeriod(0, false), (e: unknown) => e instanceof UsageError && /--grace-period "0".*needs --force/.test(e.message));
    assert.equal(gracePeriod(0, true), 0);
    assert.equal(gracePeriod(-1, false), undefined);
    assert.equal(gracePeriod(30, false), 30);
  });
  it('a flag without its companion', () => {
    assert.throws(() => requireCompanion(true, '--restart exec', '--restart-command', '--restart-command "ssh {node} sudo reboot"'), /^UsageError: --restart exec needs --restart-command, e\.g\./);
    assert.doesNotThrow(() => requireCompanion(false, '--restart exec', '--restart-command'));
  });
  it('two overlapping ranges', () => {
    assert.throws(() => refuseOverlap('--cilium-cidr', '10.244.128.0/17', '--legacy-cidr', '10.244.0.0/16'), /--cilium-cidr "10.244.128.0\/17": expected a range that does not overlap --legacy-cidr 10.244.0.0\/16/);
    assert.doesNotThrow(() => refuseOverlap('--cilium-cidr', '10.245.0.0/16', '--legacy-cidr', '10.244.0.0/16'));
    assert.doesNotThrow(() => refuseOverlap('--cilium-cidr', 'fd00::/56', '--legacy-cidr', '10.244.0.0/16'));
  });
});
