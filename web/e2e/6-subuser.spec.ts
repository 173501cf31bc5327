import { expect, test } from '@playwright/test';

import { shoot, signIn } from './fixtures';

test('a subuser with console-only permission finds their server and sees no file manager', async ({ page }) => {
  await signIn(page, 'sub');
  // the dashboard shows the one server shared with them, from the API's rules
  const row = page.getByTestId('gs-row-default/web');
  await expect(row).toBeVisible();
  await expect(page.getByRole('link', { name: 'New game server' })).toHaveCount(0);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Nodes' })).toHaveCount(0);
  await row.getByRole('link', { name: 'web' }).click();
  const tabs = page.getByRole('navigation', { name: 'Server sections' });
  await expect(tabs.getByRole('link', { name: 'Console' })).toBeVisible();
  await expect(tabs.getByRole('link', { name: 'Files' })).toHaveCount(0);
  await expect(tabs.getByRole('link', { name: 'Backups' })).toHaveCount(0);
  // no power they were not given
  await expect(page.getByRole('button', { name: 'Stop' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Reinstall' })).toHaveCount(0);
  await shoot(page, 'subuser-gameserver');
  // the file manager's address says no instead of showing files
  await page.goto('/gameservers/default/web/files');
  await expect(page.getByText(/You may not use the Files tab/)).toBeVisible();
  await expect(page.getByTestId('file-editor')).toHaveCount(0);
  // the console works for them
  await page.goto('/gameservers/default/web/console');
  const command = page.getByLabel('Command', { exact: true });
  await command.fill('hello from a subuser');
  await command.press('Enter');
  await expect(page.getByTestId('console-text')).toContainText('console: hello from a subuser');
});
