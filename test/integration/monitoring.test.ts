// Debian's Prometheus scraping real probe agents on the dual-overlay netns data plane: every query
// of the committed Grafana dashboard and every alert of the committed PrometheusRule is evaluated
// through Prometheus' HTTP API and must return the series the situation calls for, healthy and
// under real faults (UDP 8473 dropped on a node, a starved prober, a stopped agent, a node labelled
// for Cilium whose agent is still on the legacy overlay).
//
// Containment: Prometheus runs inside a pod namespace of the topology (it reaches the agents' pod
// IPs over the overlays, as in a cluster) and its API is queried from inside that namespace; the
// host's own namespace gets nothing. The rules are the real file's with one change: each `for:` is
// cut to 2s so the test does not wait minutes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { createTopology, netnsOverlays, type NetnsPod, type Topology } from '../../lab/netns.js';
import type { ManagedProcess } from '../../lab/process.js';
import { agentJob, dashboardQueries } from '../../monitoring/dashboard.js';
import { bundledPlugin, repoRoot } from '../harness/plugin.js';
import { eventually } from '../harness/wait.js';

const agentJs = bundledPlugin.replace(/kubectl-cilium_migrate$/, 'agent.js');
const dashboardFile = join(repoRoot, 'manifests', 'monitoring', 'grafana-dashboard.json');
const ruleFile = join(repoRoot, 'manifests', 'monitoring', 'prometheusrule.yaml');
const promPort = 9090;
const testFor = '2s';
// Grafana's $__rate_interval with a 1 s scrape interval is 4 s; a little more rides out jitter.
const rateInterval = '5s';

interface Sample {
  metric: Record<string, string>;
  value: number;
}
interface Rule {
  alert: string;
  expr: string;
  for?: string;
}

/** A query the way Grafana sends it with every probe kind selected. */
function expand(expr: string): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$protocol', 'icmp|http|icmp-large');
}

describe('Prometheus on real agents: the dashboard queries and the alerts', () => {
  let topo: Topology;
  let dir: string;
  let prometheusPod: NetnsPod;
  let prometheus: ManagedProcess;
  const agents = new Map<string, { pod: NetnsPod; proc: ManagedProcess }>();
  const nodeName = (i: number) => `node-${i}`;
  const peersFile = () => join(dir, 'cluster.json');
  const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: unknown[] };
  const queries = dashboardQueries(dashboard);
  const rules = (parse(readFileSync(ruleFile, 'utf8')) as { spec: { groups: { name: string; rules: Rule[] }[] } }).spec.groups.flatMap((g) => g.rules);
  const rule = (name: string) => {
    const r = rules.find((x) => x.alert === name);
    assert.ok(r, `the rule file has ${name}`);
    return r;
  };
  const panelQuery = (title: string, refId = 'A') => {
    const q = queries.find((x) => x.panel === title && x.refId === refId);
    assert.ok(q, `the dashboard has "${title}" ${refId}`);
    return q.expr;
  };

  function writeView(ciliumNodes: number[]): void {
    const pods = [...agents.values()].map((a) => a.pod);
    writeFileSync(peersFile(), JSON.stringify({
      agents: pods.map((p) => ({ node: nodeName(p.node.index), pod: p.name, ip: p.ip })),
      nodes: topo.nodes.map((n) => ({ name: nodeName(n.index), addresses: [n.underlayIp], labels: ciliumNodes.includes(n.index) ? { 'io.cilium.migration/cilium-default': 'true' } : {} })),
      ciliumNodeCidrs: Object.fromEntries(topo.nodes.map((n) => [nodeName(n.index), [n.ciliumCidr]])),
    }));
  }

  function startAgent(pod: NetnsPod, flags: Record<string, string> = {}): ManagedProcess {
    const all: Record<string, string> = { 'peers-file': peersFile(), port: '8080', interval: '1s', timeout: '500ms', window: '10s', 'max-probes-per-second': '100', ...flags };
    return topo.spawn(pod.netns, [process.execPath, agentJs, ...Object.entries(all).flatMap(([k, v]) => [`--${k}`, v])], { PATH: process.env.PATH ?? '', NODE_NAME: nodeName(pod.node.index), POD_NAME: pod.name, POD_NAMESPACE: 'cilium-migrate', POD_IP: pod.ip }, join(dir, `${pod.name}.log`));
  }

  async function restartAgent(name: string, flags: Record<string, string> = {}): Promise<void> {
    const a = agents.get(name)!;
    await a.proc.stop();
    a.proc = startAgent(a.pod, flags);
  }

  /** GET on Prometheus' API from inside its pod namespace. */
  async function api<T>(path: string): Promise<T> {
    const script = 'fetch("http://127.0.0.1:" + process.argv[1] + process.argv[2]).then(async (r) => { process.stdout.write(await r.text()); process.exit(r.ok ? 0 : 1); }, (e) => { process.stderr.write(String(e)); process.exit(2); })';
    const r = await topo.exec(prometheusPod.netns, [process.execPath, '-e', script, String(promPort), path], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`GET ${path}: exit ${r.code}: ${r.stdout}${r.stderr}`);
    const body = JSON.parse(r.stdout) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`GET ${path}: ${body.error ?? r.stdout}`);
    return body.data;
  }

  /** An instant query. */
  async function query(expr: string): Promise<Sample[]> {
    const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expand(expr))}`);
    assert.equal(data.resultType, 'vector', expr);
    return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  /** A range query over the last `seconds`, as a time series panel asks. */
  async function rangeQuery(expr: string, seconds = 10): Promise<{ metric: Record<string, string>; values: number[] }[]> {
    const end = Date.now() / 1000;
    const data = await api<{ resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] }>(
      `/api/v1/query_range?query=${encodeURIComponent(expand(expr))}&start=${end - seconds}&end=${end}&step=1`,
    );
    assert.equal(data.resultType, 'matrix', expr);
    return data.result.map((s) => ({ metric: s.metric, values: s.values.map((v) => Number(v[1])) }));
  }

  async function firing(alert: string): Promise<Record<string, string>[]> {
    const data = await api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
    return data.alerts.filter((a) => a.labels.alertname === alert && a.state === 'firing').map((a) => a.labels);
  }

  /** Waits until `alert` fires with `count` instances; the error names what was firing instead. */
  async function untilFiring(alert: string, count: number, timeoutMs = 30_000): Promise<Record<string, string>[]> {
    let last: Record<string, string>[] = [];
    return eventually(`${alert} firing ${count} times`, async () => {
      last = await firing(alert);
      return last.length === count ? last : undefined;
    }, timeoutMs, 500).catch(async (err: Error) => {
      throw new Error(`${err.message}; firing: ${JSON.stringify(last)}; its expression gives ${JSON.stringify(await query(rule(alert).expr))}`);
    });
  }

  /** Waits until `check` holds on the query's result, reporting the last result when it does not. */
  async function until(what: string, expr: string, check: (s: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
    let last: Sample[] = [];
    return eventually(what, async () => {
      last = await query(expr);
      return check(last) ? last : undefined;
    }, timeoutMs, 500).catch((err: Error) => {
      throw new Error(`${err.message}; ${expand(expr)} gave ${JSON.stringify(last)}`);
    });
  }

  /**
   * Retries a block of assertions until all of them hold at once: on a busy machine one probe can
   * time out now and then, and the picture asserted must be whole, not a mix of moments.
   */
  async function settled(what: string, block: () => Promise<void>, timeoutMs = 30_000): Promise<void> {
    let last: unknown;
    const ok = await eventually(what, async () => {
      try {
        await block();
        return true;
      } catch (err) {
        last = err;
        return undefined;
      }
    }, timeoutMs, 1000).catch(() => false);
    if (!ok) throw last;
  }

  const key = (s: Sample, ...labels: string[]) => labels.map((l) => s.metric[l] ?? '').join(' ');
  const keys = (samples: Sample[], ...labels: string[]) => samples.map((s) => key(s, ...labels)).sort();

  before(async () => {
    topo = await createTopology(4);
    dir = mkdtempSync(join(tmpdir(), 'monitoring-'));
    // Nodes 0 and 1 on the legacy CNI, 2 and 3 migrated, as half way through a migration.
    const pods = [
      await topo.addPod(0, 'legacy', 'agent-0'),
      await topo.addPod(1, 'legacy', 'agent-1'),
      await topo.addPod(2, 'cilium', 'agent-2'),
      await topo.addPod(3, 'cilium', 'agent-3'),
    ];
    for (const pod of pods) agents.set(pod.name, { pod, proc: undefined as unknown as ManagedProcess });
    writeView([2, 3]);
    for (const a of agents.values()) a.proc = startAgent(a.pod);

    // The targets carry the labels the ServiceMonitor gives them (job, namespace, pod, node).
    // Prometheus sits on node 2's legacy overlay: when node 2 drops UDP 8473 below, the replies
    // to it still come back over the legacy overlay, so it keeps scraping every agent (from
    // anywhere else the broken node's own agent could not be scraped, and its half of the pairs
    // would show as a missing agent instead).
    prometheusPod = await topo.addPod(2, 'legacy', 'prometheus');
    const groups = (parse(readFileSync(ruleFile, 'utf8')) as { spec: { groups: { rules: Rule[] }[] } }).spec.groups;
    for (const g of groups) for (const r of g.rules) if (r.for) r.for = testFor;
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
    writeFileSync(join(dir, 'prometheus.yaml'), stringify({
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: [join(dir, 'rules.yaml')],
      scrape_configs: [{
        job_name: agentJob,
        honor_labels: true,
        static_configs: pods.map((p) => ({ targets: [`${p.ip}:8080`], labels: { namespace: 'cilium-migrate', pod: p.name, node: nodeName(p.node.index) } })),
      }],
    }));
    prometheus = topo.spawn(prometheusPod.netns, [
      'prometheus', `--config.file=${join(dir, 'prometheus.yaml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
    ], { PATH: process.env.PATH ?? '' }, join(dir, 'prometheus.log'));
    await eventually('Prometheus ready', async () => {
      if (!prometheus.running()) throw new Error(`prometheus exited: ${readFileSync(prometheus.logFile, 'utf8')}`);
      const r = await topo.exec(prometheusPod.netns, [process.execPath, '-e', `fetch("http://127.0.0.1:${promPort}/-/ready").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`]);
      return r.code === 0 ? true : undefined;
    }, 30_000, 500);
  });
  after(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads every alert of the rule file and scrapes every agent', async () => {
    const data = await api<{ groups: { rules: { name: string; type: string; health: string }[] }[] }>('/api/v1/rules');
    const loaded = data.groups.flatMap((g) => g.rules);
    assert.deepEqual(loaded.map((r) => r.name).sort(), rules.map((r) => r.alert).sort());
    await until('every target up', `up{job="${agentJob}"} == 1`, (s) => s.length === 4);
    assert.ok(loaded.every((r) => r.type === 'alerting' && r.health !== 'err'), JSON.stringify(loaded));
  });

  it('answers every dashboard query with the healthy half-migrated cluster\'s series', async () => {
    // Every pair reachable over every probe: no stale cell, no failing pair.
    await until('every cell fresh', 'sum(cilium_migrate_stale_cells)', (s) => s[0]?.value === 0, 45_000);
    await until('no failure left in the window', 'count(cilium_migrate_peer_failure_ratio)', (s) => s.length === 0, 30_000);
    await until('RTTs for every overlay pair', panelQuery('Round-trip time by overlay pair (p50, p90, p99)', 'A'), (s) => s.length === 4);

    await settled('the healthy picture in every panel and no alert', async () => {
      const matrix = await query(panelQuery('Reachability matrix: source node against destination overlay'));
      assert.deepEqual(keys(matrix, 'source', 'dst_overlay'), [
        'node-0 on legacy cilium', 'node-0 on legacy legacy', 'node-1 on legacy cilium', 'node-1 on legacy legacy',
        'node-2 on cilium cilium', 'node-2 on cilium legacy', 'node-3 on cilium cilium', 'node-3 on cilium legacy',
      ]);
      assert.ok(matrix.every((s) => s.value === 1), JSON.stringify(matrix));

      const summary = await rangeQuery(panelQuery('Overlay summary (source overlay to destination overlay)'));
      assert.deepEqual(summary.map((s) => `${s.metric.src_overlay}->${s.metric.dst_overlay}`).sort(), ['cilium->cilium', 'cilium->legacy', 'legacy->cilium', 'legacy->legacy']);
      assert.ok(summary.every((s) => s.values.at(-1) === 1), JSON.stringify(summary));

      assert.deepEqual(await query(panelQuery('Failing pairs')), []);
      assert.deepEqual((await query(panelQuery('Failing pairs not listed'))).map((s) => s.value), [0]);

      for (const refId of ['A', 'B', 'C']) {
        const rtt = await query(panelQuery('Round-trip time by overlay pair (p50, p90, p99)', refId));
        assert.deepEqual(keys(rtt, 'src_overlay', 'dst_overlay'), ['cilium cilium', 'cilium legacy', 'legacy cilium', 'legacy legacy'], refId);
        assert.ok(rtt.every((s) => s.value > 0 && s.value < 0.5), `${refId}: ${JSON.stringify(rtt)}`);
      }
      const probes = await query(panelQuery('Probes per second by result'));
      const ok = probes.filter((s) => s.metric.result === 'success');
      assert.deepEqual(keys(ok, 'src_overlay', 'dst_overlay'), ['cilium cilium', 'cilium legacy', 'legacy cilium', 'legacy legacy']);
      assert.ok(ok.every((s) => s.value > 0.5), JSON.stringify(probes));

      assert.deepEqual((await query(panelQuery('Migration progress'))).map((s) => s.value), [0.5]);
      assert.deepEqual((await query(panelQuery('Nodes per overlay'))).map((s) => `${s.metric.expected_overlay} ${s.value}`).sort(), ['cilium 2', 'legacy 2']);
      assert.deepEqual((await query(panelQuery('Agents per overlay'))).map((s) => `${s.metric.overlay} ${s.value}`).sort(), ['cilium 2', 'legacy 2']);
      assert.deepEqual((await query(panelQuery('Agents answering'))).map((s) => s.value), [4]);
      assert.deepEqual((await query(panelQuery('Agents on the wrong overlay'))).map((s) => s.value), [0]);
      assert.deepEqual((await query(panelQuery('Stale cells'))).map((s) => s.value), [0]);
      assert.equal(queries.length, 14, 'every query of the dashboard is checked above');

      for (const r of rules) assert.deepEqual(await query(r.expr), [], `${r.alert} is quiet on a healthy cluster`);
      const active = await api<{ alerts: unknown[] }>('/api/v1/alerts');
      assert.deepEqual(active.alerts, []);
    });
  });

  it('fires CiliumMigrateCrossOverlayUnreachable for exactly the cross-overlay pairs of a node whose UDP 8473 is dropped', async () => {
    await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort);
    try {
      const alert = 'CiliumMigrateCrossOverlayUnreachable';
      const fired = await untilFiring(alert, 4);
      // node-3 -> node-2 also fails, but both are on Cilium: not a cross-overlay pair.
      assert.deepEqual(fired.map((l) => `${l.node}(${l.src_overlay}) -> ${l.dst_node}(${l.dst_overlay})`).sort(), [
        'node-0(legacy) -> node-2(cilium)', 'node-1(legacy) -> node-2(cilium)', 'node-2(cilium) -> node-0(legacy)', 'node-2(cilium) -> node-1(legacy)',
      ]);
      assert.ok(fired.every((l) => l.severity === 'critical'));
      await settled('the fault in the failing pairs, the matrix and the summary', async () => {
        const expr = await query(rule(alert).expr);
        assert.equal(expr.length, 4);
        assert.ok(expr.every((s) => s.value >= 0.5 && s.value <= 1));

        const failing = await query(panelQuery('Failing pairs'));
        assert.deepEqual([...new Set(keys(failing, 'node', 'dst_node'))], [
          'node-0 node-2', 'node-1 node-2', 'node-2 node-0', 'node-2 node-1', 'node-2 node-3', 'node-3 node-2',
        ]);
        const matrix = await query(panelQuery('Reachability matrix: source node against destination overlay'));
        const below = matrix.filter((s) => s.value < 1).map((s) => key(s, 'source', 'dst_overlay')).sort();
        assert.deepEqual(below, ['node-0 on legacy cilium', 'node-1 on legacy cilium', 'node-2 on cilium cilium', 'node-2 on cilium legacy', 'node-3 on cilium cilium']);
        // Every overlay pair but legacy -> legacy has node-2 on one end.
        const summary = await query(panelQuery('Overlay summary (source overlay to destination overlay)'));
        assert.deepEqual(summary.filter((s) => s.value < 1).map((s) => key(s, 'src_overlay', 'dst_overlay')).sort(), ['cilium cilium', 'cilium legacy', 'legacy cilium']);
      });
    } finally {
      await topo.restoreUdpPort(2, netnsOverlays.cilium.udpPort);
    }
    await eventually('the alert resolved', async () => ((await firing('CiliumMigrateCrossOverlayUnreachable')).length === 0 ? true : undefined), 30_000, 500);
  });

  it('fires CiliumMigrateStaleData for an agent whose probe budget cannot keep up', async () => {
    // 3 peers x 2 probes each second need 6 probes/s; at 1/s each cell is probed every 6 s, past
    // the 2 intervals + 2 s after which a cell is stale.
    await restartAgent('agent-3', { 'max-probes-per-second': '1' });
    try {
      const stale = await until('stale cells on node-3', rule('CiliumMigrateStaleData').expr, (s) => s.length === 1 && s[0]!.metric.node === 'node-3');
      assert.ok(stale[0]!.value >= 1, JSON.stringify(stale));
      const fired = await untilFiring('CiliumMigrateStaleData', 1);
      assert.deepEqual(fired.map((l) => `${l.node} ${l.pod}`), ['node-3 agent-3']);
      const cells = await query(panelQuery('Stale cells'));
      assert.ok(cells[0]!.value >= 1, JSON.stringify(cells));
    } finally {
      await restartAgent('agent-3');
    }
    await until('fresh again', rule('CiliumMigrateStaleData').expr, (s) => s.length === 0);
  });

  it('fires CiliumMigrateOverlayMismatch when a node is labelled for Cilium while its agent is on the legacy overlay, and counts it as migrating', async () => {
    writeView([1, 2, 3]);
    try {
      const fired = await untilFiring('CiliumMigrateOverlayMismatch', 1);
      assert.deepEqual(fired.map((l) => `${l.node} ${l.pod}`), ['node-1 agent-1']);
      assert.deepEqual((await query(panelQuery('Migration progress'))).map((s) => s.value), [0.75]);
      assert.deepEqual((await query(panelQuery('Nodes per overlay'))).map((s) => `${s.metric.expected_overlay} ${s.value}`).sort(), ['cilium 3', 'legacy 1']);
      assert.deepEqual((await query(panelQuery('Agents on the wrong overlay'))).map((s) => s.value), [1]);
    } finally {
      writeView([2, 3]);
    }
    await until('no mismatch', rule('CiliumMigrateOverlayMismatch').expr, (s) => s.length === 0);
  });

  it('fires CiliumMigrateAgentMissing when an agent stops answering, and CiliumMigrateAgentsAbsent when none does', async () => {
    await agents.get('agent-1')!.proc.stop();
    const missing = await until('one agent missing', rule('CiliumMigrateAgentMissing').expr, (s) => s.length === 1);
    assert.equal(missing[0]!.value, 1);
    await untilFiring('CiliumMigrateAgentMissing', 1);
    assert.deepEqual((await query(panelQuery('Agents answering'))).map((s) => s.value), [3]);
    assert.deepEqual(await query(rule('CiliumMigrateAgentsAbsent').expr), []);

    await Promise.all([...agents.values()].map((a) => a.proc.stop()));
    await until('no agent at all', rule('CiliumMigrateAgentsAbsent').expr, (s) => s.length === 1);
    await untilFiring('CiliumMigrateAgentsAbsent', 1);
  });
});
