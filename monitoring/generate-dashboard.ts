// `make dashboard`: writes the dashboard built by monitoring/dashboard.ts where kustomize picks it up.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dashboardJson } from './dashboard.js';

export const dashboardFile = fileURLToPath(new URL('../manifests/monitoring/grafana-dashboard.json', import.meta.url));

writeFileSync(dashboardFile, dashboardJson());
process.stdout.write(`wrote ${dashboardFile}\n`);
