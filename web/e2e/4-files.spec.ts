import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';

import { getServer, hostPort, shoot, signIn, state } from './fixtures';

test('a file edited in the file manager is on the server disk and served by the game', async ({ page }) => {
  await signIn(page, 'owner');
  await page.goto('/gameservers/default/web/files');
  await page.getByRole('button', { name: 'index.html', exact: true }).click();
  const editor = page.getByTestId('file-editor');
  await expect(editor.locator('.monaco-editor')).toBeVisible();
  await expect(editor.locator('.view-lines')).toContainText('welcome to');
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('edited in the file manager');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await expect(page.getByTestId('file-save-status')).toContainText('Saved');
  await shoot(page, 'gameserver-files');

  const gs = (await getServer('web'))!;
  // on the server's disk, as the host sees it …
  const onDisk = readFileSync(join(state().dir, 'nodelet', 'servers', gs.metadata.uid, 'index.html'), 'utf8');
  expect(onDisk.trim()).toBe('edited in the file manager');
  // … and as the game sees it: its httpd serves the file from /home/container
  const served = await (await fetch(`http://127.0.0.1:${hostPort(gs)}/index.html`)).text();
  expect(served.trim()).toBe('edited in the file manager');
});
