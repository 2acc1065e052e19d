// Every unit test file, imported explicitly: a missing file fails the import instead of turning
// into "0 tests". test/unit/suite-lists.test.ts checks that none is left out.
import './unit/agent-config.test.js';
import './unit/agent-http.test.js';
import './unit/agent-metrics.test.js';
import './unit/agent-view.test.js';
import './unit/cidr.test.js';
import './unit/cli.test.js';
import './unit/drain-filter.test.js';
import './unit/drain.test.js';
import './unit/duration.test.js';
import './unit/errors.test.js';
import './unit/eviction.test.js';
import './unit/gate.test.js';
import './unit/kube-config.test.js';
import './unit/kube-lite.test.js';
import './unit/lab.test.js';
import './unit/lifecycle.test.js';
import './unit/lock.test.js';
import './unit/matrix.test.js';
import './unit/restart.test.js';
import './unit/retry.test.js';
import './unit/peers.test.js';
import './unit/prober.test.js';
import './unit/selector.test.js';
import './unit/state.test.js';
import './unit/suite-lists.test.js';
import './unit/values.test.js';
