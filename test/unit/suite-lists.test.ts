// The suites are explicit lists of files (test/unit.ts, test/integration.ts); a test file that is
// not listed would silently never run, so this checks that every one is.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const testDir = join(dirname(fileURLToPath(import.meta.url)), '..');

for (const suite of ['unit', 'integration']) {
  describe(`test/${suite}.ts`, () => {
    it(`imports every test/${suite}/*.test.ts`, () => {
      const listed = readFileSync(join(testDir, `${suite}.ts`), 'utf8');
      const files = readdirSync(join(testDir, suite)).filter((f) => f.endsWith('.test.ts'));
      assert.ok(files.length > 0, `test/${suite} has test files`);
      const missing = files.filter((f) => !listed.includes(`'./${suite}/${f.replace(/\.ts$/, '.js')}'`));
      assert.deepEqual(missing, [], `not imported by test/${suite}.ts`);
    });
  });
}
