// Prints "N passed, M failed" for a Vitest or Playwright JSON report, the line scripts/test
// counts into its closing summary. A missing or unreadable report counts as one failure.
import { readFileSync } from 'node:fs';

const [kind, file] = process.argv.slice(2);
let passed = 0;
let failed = 0;
try {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  if (kind === 'vitest') {
    passed = r.numPassedTests ?? 0;
    failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
  } else {
    passed = r.stats?.expected ?? 0;
    failed = (r.stats?.unexpected ?? 0) + (r.stats?.flaky ?? 0) + (r.errors?.length ?? 0);
  }
} catch (e) {
  console.error(`tally: no ${kind} report at ${file}: ${e.message}`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
