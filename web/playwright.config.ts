import { defineConfig } from '@playwright/test';

// The panel's browser tests: Debian's Chromium (headless) against a real `catalyst server
// --with-nodelet` that e2e/global-setup.ts starts (its own containerd, SQLite, a busybox game
// server image packed by `catalyst image busybox`). The tests share that one server, so they
// run one at a time, in file order.
// global-setup.ts sets CATALYST_E2E; workers evaluate this file again after it ran
const started = process.env.CATALYST_E2E ? (JSON.parse(process.env.CATALYST_E2E) as { url: string }) : undefined;

export default defineConfig({
  testDir: './e2e',
  globalSetup: './e2e/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 180_000,
  expect: { timeout: 20_000 },
  outputDir: 'test-results',
  reporter: [['list'], ['json', { outputFile: 'test-results/results.json' }]],
  use: {
    browserName: 'chromium',
    baseURL: started?.url,
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // as root in a closed network: no sandbox, no calls home
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    },
  },
});
