import { expect, test } from '@playwright/test';

import { shoot, signIn } from './fixtures';

test('a console command reaches the server and its echo comes back', async ({ page }) => {
  await signIn(page, 'owner');
  await page.goto('/gameservers/default/web/console');
  const text = page.getByTestId('console-text');
  // the tail of the log: the demo prints "ready" once it serves
  await expect(text).toContainText('ready');
  const command = page.getByLabel('Command', { exact: true });
  await command.fill('hello from the panel');
  await command.press('Enter');
  await expect(text).toContainText('console: hello from the panel');
  await expect(command).toHaveValue('');
  // the history: ↑ brings the last command back
  await command.press('ArrowUp');
  await expect(command).toHaveValue('hello from the panel');
  await command.fill('');
  await shoot(page, 'gameserver-console');
});
