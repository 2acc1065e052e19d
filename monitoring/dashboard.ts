// The Grafana dashboard of a migration, built with Grafana's foundation SDK from the agents' metrics
// (agent/metrics.ts). `make dashboard` writes it to manifests/monitoring/grafana-dashboard.json, which
// is committed; test/unit/dashboard.test.ts checks the file is what this code builds, and
// test/integration/monitoring.test.ts evaluates every query against real agents.
import * as common from '@grafana/grafana-foundation-sdk/common';
import {
  CustomVariableBuilder,
  DashboardBuilder,
  DashboardCursorSync,
  DatasourceVariableBuilder,
  RowBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  type Dashboard,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeSeriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';

/** The job label the ServiceMonitor gives the agents' targets (manifests/monitoring). */
export const agentJob = 'cilium-migrate-agent';
export const dashboardUid = 'cilium-migrate';

const datasource = { type: 'prometheus', uid: '${datasource}' };
const protocol = 'protocol=~"$protocol"';

const query = (refId: string, expr: string, legend?: string) => {
  const q = new DataqueryBuilder().refId(refId).expr(expr).range();
  return legend ? q.legendFormat(legend) : q;
};
const instantTable = (refId: string, expr: string) => new DataqueryBuilder().refId(refId).expr(expr).instant().format(PromQueryFormat.Table);

// Reachability: red below 90 %, amber below 99 %, green at 99 % and above.
const reachability = () =>
  new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
    { value: null, color: 'red' },
    { value: 0.9, color: 'orange' },
    { value: 0.99, color: 'green' },
  ]);
const zeroIsGood = () =>
  new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
    { value: null, color: 'green' },
    { value: 1, color: 'red' },
  ]);

/** Builds the dashboard. */
export function buildDashboard(): Dashboard {
  // Stable panel ids, so links to a panel (viewPanel=N) survive regeneration.
  let id = 0;
  const nextId = () => ++id;
  const row = (title: string) => new RowBuilder(title).id(nextId());
  return new DashboardBuilder('Cilium migration: cross-overlay reachability')
    .uid(dashboardUid)
    .description('Probe agents of kubectl-cilium-migrate: reachability between the legacy and the Cilium overlay, latency, failing pairs, agents and nodes per overlay.')
    .tags(['cilium', 'migration', 'kubectl-cilium-migrate'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .timezone('browser')
    .withVariable(new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'))
    .withVariable(
      new CustomVariableBuilder('protocol')
        .label('Probe')
        .values('icmp,http,icmp-large')
        .multi(true)
        .includeAll(true)
        .current({ selected: true, text: ['All'], value: ['$__all'] }),
    )

    .withRow(row('Reachability'))
    .withPanel(
      new TablePanel().id(nextId())
        .title('Reachability matrix: source node against destination overlay')
        .description('Per source agent (its node and overlay) and destination overlay: the mean success ratio over the probe window of the peers it probes there, the worst probe kind selected. Healthy pairs are aggregated per overlay by the agents; the failing pairs below name the destination node.')
        .datasource(datasource)
        .withTarget(instantTable('A', `label_join(min by (node, src_overlay, dst_overlay) (cilium_migrate_reachability_ratio{${protocol}}), "source", " on ", "node", "src_overlay")`))
        .withTransformation({ id: 'groupingToMatrix', options: { rowField: 'source', columnField: 'dst_overlay', valueField: 'Value', emptyValue: 'null' } })
        .unit('percentunit')
        .min(0)
        .max(1)
        .decimals(1)
        .thresholds(reachability())
        .cellOptions({ type: common.TableCellDisplayMode.ColorBackground })
        .height(8)
        .span(12),
    )
    .withPanel(
      new TimeSeriesPanel().id(nextId())
        .title('Overlay summary (source overlay to destination overlay)')
        .description('The 2x2 summary over time: the mean reachability of every agent of one overlay towards the peers of the other (or the same) overlay.')
        .datasource(datasource)
        .withTarget(query('A', `avg by (src_overlay, dst_overlay) (cilium_migrate_reachability_ratio{${protocol}})`, '{{src_overlay}} → {{dst_overlay}}'))
        .unit('percentunit')
        .min(0)
        .max(1)
        .thresholds(reachability())
        .height(8)
        .span(12),
    )
    .withPanel(
      new TablePanel().id(nextId())
        .title('Failing pairs')
        .description('Source node and destination node of every pair with failed probes in the window, worst first (each agent lists at most MAX_FAILING_SERIES).')
        .datasource(datasource)
        .withTarget(instantTable('A', `sort_desc(max by (node, src_overlay, dst_node, dst_pod, dst_overlay, protocol) (cilium_migrate_peer_failure_ratio{${protocol}}))`))
        .withTransformation({ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { node: 'source node', src_overlay: 'source overlay', dst_node: 'destination node', dst_pod: 'destination agent', dst_overlay: 'destination overlay', Value: 'failure ratio' } } })
        .unit('percentunit')
        .decimals(1)
        .noValue('no failing pair')
        .height(8)
        .span(18),
    )
    .withPanel(
      new StatPanel().id(nextId())
        .title('Failing pairs not listed')
        .description('Failing pairs beyond the per-agent cap, counted but without a series of their own.')
        .datasource(datasource)
        .withTarget(query('A', 'sum(cilium_migrate_failing_peers_unlisted)'))
        .thresholds(zeroIsGood())
        .height(8)
        .span(6),
    )

    .withRow(row('Latency'))
    .withPanel(
      new TimeSeriesPanel().id(nextId())
        .title('Round-trip time by overlay pair (p50, p90, p99)')
        .datasource(datasource)
        .withTarget(query('A', `histogram_quantile(0.5, sum by (le, src_overlay, dst_overlay) (rate(cilium_migrate_probe_rtt_seconds_bucket{${protocol}}[$__rate_interval])))`, 'p50 {{src_overlay}} → {{dst_overlay}}'))
        .withTarget(query('B', `histogram_quantile(0.9, sum by (le, src_overlay, dst_overlay) (rate(cilium_migrate_probe_rtt_seconds_bucket{${protocol}}[$__rate_interval])))`, 'p90 {{src_overlay}} → {{dst_overlay}}'))
        .withTarget(query('C', `histogram_quantile(0.99, sum by (le, src_overlay, dst_overlay) (rate(cilium_migrate_probe_rtt_seconds_bucket{${protocol}}[$__rate_interval])))`, 'p99 {{src_overlay}} → {{dst_overlay}}'))
        .unit('s')
        .min(0)
        .height(8)
        .span(16),
    )
    .withPanel(
      new TimeSeriesPanel().id(nextId())
        .title('Probes per second by result')
        .datasource(datasource)
        .withTarget(query('A', `sum by (src_overlay, dst_overlay, result) (rate(cilium_migrate_probes_total{${protocol}}[$__rate_interval]))`, '{{src_overlay}} → {{dst_overlay}} {{result}}'))
        .unit('ops')
        .min(0)
        .height(8)
        .span(8),
    )

    .withRow(row('Agents and migration progress'))
    .withPanel(
      new StatPanel().id(nextId())
        .title('Migration progress')
        .description('Nodes labelled for Cilium out of all nodes, as the agents see them.')
        .datasource(datasource)
        .withTarget(query('A', 'max(cilium_migrate_nodes{expected_overlay="cilium"}) / max(sum by (namespace, pod) (cilium_migrate_nodes))'))
        .unit('percentunit')
        .min(0)
        .max(1)
        .height(6)
        .span(4),
    )
    .withPanel(
      new TimeSeriesPanel().id(nextId())
        .title('Nodes per overlay')
        .description('Nodes by the overlay they should be on: cilium once labelled for migration.')
        .datasource(datasource)
        .withTarget(query('A', 'max by (expected_overlay) (cilium_migrate_nodes)', '{{expected_overlay}}'))
        .min(0)
        .decimals(0)
        .height(6)
        .span(5),
    )
    .withPanel(
      new TimeSeriesPanel().id(nextId())
        .title('Agents per overlay')
        .description('Agents by the overlay their pod IP is on.')
        .datasource(datasource)
        .withTarget(query('A', 'count by (overlay) (cilium_migrate_agent_info)', '{{overlay}}'))
        .min(0)
        .decimals(0)
        .height(6)
        .span(5),
    )
    .withPanel(
      new StatPanel().id(nextId())
        .title('Agents answering')
        .datasource(datasource)
        .withTarget(query('A', `count(up{job="${agentJob}"} == 1)`))
        .decimals(0)
        .height(6)
        .span(3),
    )
    .withPanel(
      new StatPanel().id(nextId())
        .title('Agents on the wrong overlay')
        .datasource(datasource)
        .withTarget(query('A', 'sum(cilium_migrate_overlay_mismatch)'))
        .thresholds(zeroIsGood())
        .height(6)
        .span(3),
    )
    .withPanel(
      new StatPanel().id(nextId())
        .title('Stale cells')
        .description('Peer and protocol cells without a sample within two probe intervals: the gate reads them as UNKNOWN.')
        .datasource(datasource)
        .withTarget(query('A', 'sum(cilium_migrate_stale_cells)'))
        .thresholds(zeroIsGood())
        .height(6)
        .span(4),
    )
    .build();
}

/** The dashboard as the committed file holds it. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

/** Every Prometheus expression of the dashboard, with the panel it belongs to. */
export function dashboardQueries(dashboard: { panels?: unknown[] }): { panel: string; refId: string; expr: string; instant: boolean }[] {
  const out: { panel: string; refId: string; expr: string; instant: boolean }[] = [];
  for (const p of (dashboard.panels ?? []) as { title?: string; targets?: { refId?: string; expr?: string; instant?: boolean }[] }[]) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '', refId: t.refId ?? '', expr: t.expr, instant: t.instant === true });
  }
  return out;
}
