// Every integration test file, imported explicitly: a missing file fails the import instead of
// turning into "0 tests". test/unit/suite-lists.test.ts checks that none is left out.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { stopSharedControlPlane } from './harness/shared-cluster.js';

import './integration/agent-discovery.test.js';
import './integration/agent-netns.test.js';
import './integration/calico-lab.test.js';
import './integration/cilium-chart.test.js';
import './integration/connectivity.test.js';
import './integration/control-plane.test.js';
import './integration/control-plane-lifecycle.test.js';
import './integration/drain.test.js';
import './integration/in-cluster.test.js';
import './integration/in-cluster-lab.test.js';
import './integration/egress-proxy.test.js';
import './integration/kind-lab.test.js';
import './integration/lab-cli.test.js';
import './integration/lab-e2e.test.js';
import './integration/lifecycle.test.js';
import './integration/manifests.test.js';
import './integration/monitoring.test.js';
import './integration/netns-topology.test.js';
import './integration/node-cleanup.test.js';
import './integration/node-engine.test.js';
import './integration/plugin.test.js';
import './integration/preflight.test.js';
import './integration/source-layouts.test.js';
import './integration/waves.test.js';

// kubectl keeps a discovery cache per API server in ~/.kube/cache: hundreds of directories left on
// the machine by the control planes the suite starts. Its KUBECACHEDIR puts them in the suite's TMPDIR.
const kubeCache = mkdtempSync(join(tmpdir(), 'kube-cache-'));
process.env.KUBECACHEDIR = kubeCache;

after(() => stopSharedControlPlane());
after(() => rmSync(kubeCache, { recursive: true, force: true }));
