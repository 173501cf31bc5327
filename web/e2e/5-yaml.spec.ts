import { expect, test } from '@playwright/test';

import { ctl, getServer, shoot, signIn } from './fixtures';

test('a variable changed in YAML shows its diff; a conflict with catalystctl names it and is resolved', async ({ page }) => {
  await signIn(page, 'owner');
  await page.goto('/gameservers/default/web/yaml');
  await page.getByLabel('Plain text editor').check();
  const text = page.getByRole('textbox', { name: 'YAML of GameServer default/web' });
  await expect(text).toHaveValue(/MOTD: /);
  const edited = (await text.inputValue()).replace(/MOTD: .*/, 'MOTD: changed in YAML');
  await text.fill(edited);
  await page.getByRole('button', { name: 'Review changes' }).click();
  const summary = page.getByTestId('diff-summary');
  await expect(summary).toContainText('spec.variables.MOTD');
  const lines = page.getByTestId('diff-lines');
  await expect(lines).toContainText('- ');
  await expect(lines).toContainText('MOTD: changed in YAML');
  await shoot(page, 'gameserver-yaml-diff');

  // GitOps sets the same field meanwhile (manager catalystctl) …
  ctl(
    ['apply', '--force-conflicts', '-f', '-'],
    'apiVersion: catalyst.dev/v1alpha1\nkind: GameServer\nmetadata: {name: web, namespace: default}\nspec:\n  variables: {MOTD: set by gitops}\n',
  );
  await expect.poll(async () => (await getServer('web'))?.spec.variables?.MOTD).toBe('set by gitops');
  // … so the panel's apply conflicts, and says with whom
  await page.getByRole('button', { name: 'Apply', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('spec.variables.MOTD');
  await expect(dialog).toContainText('catalystctl');
  await shoot(page, 'gameserver-yaml-conflict');
  await dialog.getByRole('button', { name: 'Force apply (take ownership)' }).click();
  await expect(page.getByTestId('apply-result')).toContainText('panel');
  const gs = (await getServer('web'))!;
  expect(gs.spec.variables?.MOTD).toBe('changed in YAML');
  const managed = (gs as unknown as { metadata: { managedFields: { manager: string; fieldsV1: unknown }[] } }).metadata.managedFields;
  const panel = managed.find((m) => m.manager === 'panel');
  expect(JSON.stringify(panel?.fieldsV1)).toContain('f:MOTD');
  const gitops = managed.find((m) => m.manager === 'catalystctl');
  expect(JSON.stringify(gitops?.fieldsV1 ?? {})).not.toContain('f:MOTD');
});
