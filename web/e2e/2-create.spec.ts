import { expect, test } from '@playwright/test';

import { getServer, hostPort, shoot, signIn, state } from './fixtures';

test('a GameServer made from a Template through the form reaches Running, live', async ({ page }) => {
  await signIn(page, 'owner');
  await shoot(page, 'dashboard-empty');
  let navigations = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations += 1;
  });
  await page.getByRole('link', { name: 'New game server' }).click();
  await expect(page.getByRole('heading', { name: /new game server/i })).toBeVisible();
  await page.getByLabel('Name', { exact: true }).fill('web');
  await page.getByLabel('Template').selectOption(state().template);
  const motd = page.getByLabel(/Message of the day/);
  await expect(motd).toHaveValue("Catalyst's demo");
  // the Template's rule (max:60), checked as one types
  await motd.fill('x'.repeat(61));
  await expect(page.getByText(/may not be greater than 60|at most 60/i).first()).toBeVisible();
  await motd.fill('made in the panel');
  await shoot(page, 'create-gameserver');
  await page.getByRole('button', { name: 'Create game server' }).click();
  await expect(page).toHaveURL(/\/gameservers\/default\/web/);
  const before = navigations;
  // the phase comes from the watch: no reload, no navigation
  await expect(page.getByTestId('phase').first()).toHaveText('Running', { timeout: 120_000 });
  expect(navigations).toBe(before);
  const gs = (await getServer('web'))!;
  expect(gs.spec.template).toBe(state().template);
  expect(gs.spec.variables?.MOTD).toBe('made in the panel');
  const port = hostPort(gs)!;
  const page2 = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  expect(page2).toContain('made in the panel');
  await shoot(page, 'gameserver-overview');

  // and the dashboard lists it, live, with its address
  await page.getByRole('link', { name: 'Game servers' }).click();
  const row = page.getByTestId('gs-row-default/web');
  await expect(row.getByTestId('phase')).toHaveText('Running');
  await expect(row).toContainText(`:${port}`);
  await shoot(page, 'dashboard');
});
