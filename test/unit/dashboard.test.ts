// The committed dashboard is exactly what monitoring/dashboard.ts builds, and it asks only for
// metrics the agent exports.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AgentMetrics } from '../../agent/metrics.js';
import { dashboardJson, dashboardQueries } from '../../monitoring/dashboard.js';
import { repoRoot } from '../harness/plugin.js';

const committed = `${repoRoot}/manifests/monitoring/grafana-dashboard.json`;

describe('Grafana dashboard', () => {
  it('regenerates to the committed manifests/monitoring/grafana-dashboard.json (run make dashboard)', () => {
    assert.equal(readFileSync(committed, 'utf8'), dashboardJson());
  });

  it('queries only metrics the agent exports, through the datasource variable', async () => {
    const metrics = new AgentMetrics({ node: 'n', pod: 'p', namespace: 'ns', ip: '10.244.0.1', overlay: 'legacy', expectedOverlay: 'legacy', version: 't' }, 1);
    const exported = new Set((await metrics.registry.getMetricsAsJSON()).flatMap((m) => (String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name])));
    exported.add('up');
    const dashboard = JSON.parse(readFileSync(committed, 'utf8')) as { panels: { type: string; datasource?: { uid?: string } }[]; templating: { list: { name: string; type: string }[] } };
    const queries = dashboardQueries(dashboard);
    assert.ok(queries.length >= 12, `${queries.length} queries`);
    for (const q of queries) {
      const names = q.expr.match(/\b(?:cilium_migrate_[a-z_]+|up)\b(?=\s*[{[)])/g) ?? [];
      assert.ok(names.length > 0, `${q.panel}: names a metric`);
      for (const n of names) assert.ok(exported.has(n), `${q.panel}: ${n} is exported by the agent`);
    }
    assert.deepEqual(dashboard.templating.list.map((v) => `${v.name}:${v.type}`), ['datasource:datasource', 'protocol:custom']);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) assert.equal(p.datasource?.uid, '${datasource}');
  });
});
