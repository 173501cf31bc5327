// Every page, signed in as an administrator: it renders its heading from the live API, passes
// axe's accessibility rules (no serious or critical violation), and is photographed at desktop
// and phone width into docs/screenshots/ — light, and the dashboard in dark too.
import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';

import { shoot, signIn } from './fixtures';

async function accessible(page: Page, what: string) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`),
    `${what}: accessibility`,
  ).toEqual([]);
}

const PAGES: [string, string, string | RegExp][] = [
  ['/', 'dashboard', 'Game servers'],
  ['/gameservers/default/web', 'gameserver-overview', 'web'],
  ['/gameservers/default/web/variables', 'gameserver-variables', 'web'],
  ['/gameservers/default/web/backups', 'gameserver-backups', 'web'],
  ['/gameservers/default/web/schedules', 'gameserver-schedules', 'web'],
  ['/gameservers/default/web/metrics', 'gameserver-metrics', 'web'],
  ['/nodes', 'nodes', 'Nodes'],
  ['/templates', 'templates', 'Templates'],
  ['/yaml/templates/demo-web', 'template-yaml', /demo-web/],
  ['/alertrules', 'alertrules', 'Alert rules'],
  ['/users', 'users', 'Users'],
  ['/roles', 'roles', 'Roles and bindings'],
  ['/apikeys', 'apikeys', 'API keys'],
  ['/account', 'account', 'My account'],
];

test('every page renders, is accessible, and is photographed', async ({ page }) => {
  test.setTimeout(600_000);
  await signIn(page, 'owner');
  for (const [path, name, heading] of PAGES) {
    await test.step(path, async () => {
      await page.goto(path);
      await expect(page.getByRole('heading', { level: 1, name: heading }).first()).toBeVisible();
      // let the live lists and lazy widgets settle (watches never leave the network idle)
      await page.waitForTimeout(1000);
      await accessible(page, path);
      await shoot(page, name);
    });
  }
  // dark
  await page.goto('/');
  await page.getByRole('button', { name: /^Theme: / }).click();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await accessible(page, 'dashboard (dark)');
  await shoot(page, 'dashboard-dark');
  await page.goto('/gameservers/default/web/console');
  await expect(page.getByTestId('console-text')).toContainText('ready');
  await accessible(page, 'console (dark)');
  await shoot(page, 'gameserver-console-dark');
});
