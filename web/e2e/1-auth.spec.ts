import { expect, test } from '@playwright/test';

import { shoot, signIn } from './fixtures';

test('a failed login shows the API message and signs no one in', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to Catalyst' })).toBeVisible();
  await shoot(page, 'login');
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('invalid user name, password or code');
  await expect(page.getByRole('heading', { name: 'Game servers' })).toHaveCount(0);
  expect(await page.evaluate(() => localStorage.getItem('catalyst.session'))).toBeNull();
});

test('a user signs in, sees who they are, and signs out', async ({ page }) => {
  await signIn(page, 'owner');
  await expect(page.getByTestId('whoami')).toHaveText('owner');
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Game servers' })).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to Catalyst' })).toBeVisible();
});
