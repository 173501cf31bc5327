// Starts what the browser tests run against, and returns the teardown:
// - `catalyst server --with-nodelet` (built by cargo: target/debug, or CATALYST_BIN_DIR) on a
//   free loopback port, with a throwaway data directory, its own containerd and SQLite store;
// - the busybox demo image (`catalyst image busybox`) where the in-process nodelet reads images;
// - a Template `demo-web` made of manifests/demo/web.yaml's spec, with a ruled variable;
// - users: `owner` (the admin role everywhere) and `sub` (console only, on server `web`).
// Teardown deletes every GameServer (containers, networks and port mappings go with them),
// stops the server (which stops its containerd), and removes what the run created.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

import { api, eventually, GROUP } from './fixtures';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const PASSWORD = 'a long enough password';
const NODE = 'panel-e2e';
const BRIDGE = 'catalyst0';

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function firstLine(child: ChildProcess, log: NodeJS.WritableStream): Promise<string> {
  return new Promise((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    let first = true;
    lines.on('line', (l) => {
      log.write(`${l}\n`);
      if (first) {
        first = false;
        res(l);
      }
    });
    child.once('exit', (code) => rej(new Error(`catalyst server exited (${code}) before it listened; see its log`)));
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const bins = process.env.CATALYST_BIN_DIR ?? join(repo, 'target', 'debug');
  const catalyst = join(bins, 'catalyst');
  const catalystctl = join(bins, 'catalystctl');
  for (const b of [catalyst, catalystctl]) {
    if (!existsSync(b)) throw new Error(`${b} is missing: build it first (cargo build --bin catalyst --bin catalystctl)`);
  }
  const bridgeWasThere = linkExists(BRIDGE);
  const dir = mkdtempSync('/tmp/catalyst-panel-e2e-');
  // the game servers run as uid 1000: their root filesystems under here must be reachable
  chmodSync(dir, 0o755);
  const images = join(dir, 'nodelet', 'images');
  mkdirSync(images, { recursive: true });
  const image = join(images, 'busybox.tar');
  execFileSync(catalyst, ['image', 'busybox', '--output', image], { stdio: 'ignore' });

  const log = createWriteStream(join(dir, 'server.log'));
  const server = spawn(
    catalyst,
    ['server', '--listen', '127.0.0.1:0', '--data-dir', dir, '--with-nodelet', '--node-name', NODE, '--sftp-listen', 'off'],
    { env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stderr!.pipe(log);
  const exited = new Promise<void>((res) => server.once('exit', () => res()));

  const teardown = async () => {
    const s = process.env.CATALYST_E2E ? (JSON.parse(process.env.CATALYST_E2E) as { url: string; token: string }) : null;
    if (s && server.exitCode === null) {
      const opts = { url: s.url, token: s.token, ca: readFileSync(join(dir, 'ca.crt')) };
      try {
        const list = await api('GET', `${GROUP}/gameservers`, undefined, opts);
        const items = ((list.body as { items?: { metadata: { name: string; namespace: string } }[] })?.items ?? []);
        for (const g of items) {
          await api('DELETE', `${GROUP}/namespaces/${g.metadata.namespace}/gameservers/${g.metadata.name}`, undefined, opts);
        }
        await eventually(
          'every game server to be gone',
          async () => {
            const r = await api('GET', `${GROUP}/gameservers`, undefined, opts);
            return ((r.body as { items?: unknown[] })?.items ?? []).length === 0;
          },
          90_000,
        );
        // the object goes before the nodelet has released its disk (unmount, loop device):
        // wait for that too before stopping the process
        const disks = join(dir, 'nodelet', 'disks');
        await eventually(
          'the nodelet to release every disk',
          async () => !existsSync(disks) || readdirSync(disks).length === 0,
          60_000,
        ).catch((e) => console.error(`teardown: ${String(e)}`));
      } catch (e) {
        console.error(`teardown: ${String(e)}`);
      }
    }
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      const killed = setTimeout(() => server.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killed);
    }
    // a containerd that outlived its server (a crash): stop it, and its tasks with it
    try {
      execFileSync('pkill', ['-f', join(dir, 'containerd', 'config.toml')], { stdio: 'ignore' });
    } catch {
      /* none left */
    }
    if (!bridgeWasThere && linkExists(BRIDGE)) {
      try {
        execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
      } catch {
        /* gone meanwhile */
      }
    }
    // mounts the nodelet may have left (servers' disks) before the directory goes
    try {
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1])
        .filter((m) => m && m.startsWith(dir))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-l', m], { stdio: 'ignore' });
        } catch {
          /* gone meanwhile */
        }
      }
    } catch {
      /* no mount table */
    }
    // loop devices of servers' disks a failed run may have left attached
    try {
      for (const line of execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n')) {
        if (!line.includes(`${dir}/`)) continue;
        try {
          execFileSync('losetup', ['-d', line.split(':')[0]], { stdio: 'ignore' });
        } catch {
          /* detached meanwhile */
        }
      }
    } catch {
      /* none */
    }
    if (!process.env.CATALYST_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const line = await firstLine(server, log);
    const url = line.trim().split(' ').pop()!;
    if (!url.startsWith('https://')) throw new Error(`unexpected first line of catalyst server: ${line}`);
    const config = join(dir, 'admin.yaml');
    const token = readFileSync(config, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('token: '))!
      .slice('token: '.length)
      .trim();
    const e2e = { url, token, dir, ctl: catalystctl, config, template: 'demo-web', password: PASSWORD };
    process.env.CATALYST_E2E = JSON.stringify(e2e);
    const ctl = (args: string[], input?: string) =>
      execFileSync(catalystctl, args, { input, env: { ...process.env, CATALYST_CONFIG: config }, encoding: 'utf8' });

    await eventually(
      `node ${NODE} to be Ready`,
      async () => {
        const r = await api('GET', `${GROUP}/nodes/${NODE}`);
        return (r.body as { status?: { state?: string } })?.status?.state === 'Ready';
      },
      60_000,
    );
    const demo = readFileSync(join(repo, 'manifests', 'demo', 'web.yaml'), 'utf8');
    const startup = /startup: >-\n((?: {4}.*\n)+)/.exec(demo)![1].replace(/\n/g, ' ').replace(/\s+/g, ' ').trim();
    const template = {
      apiVersion: 'catalyst.dev/v1alpha1',
      kind: 'Template',
      metadata: { name: 'demo-web' },
      spec: {
        description: "Catalyst's demo: busybox httpd serving a page, and a console that echoes.",
        images: [{ name: 'busybox', image: `oci-archive:${image}` }],
        startup,
        variables: [
          {
            name: 'MOTD',
            displayName: 'Message of the day',
            description: 'Shown on the page the server serves.',
            default: "Catalyst's demo",
            userViewable: true,
            userEditable: true,
            rules: 'required|string|max:60',
          },
        ],
        ports: [{ name: 'game', containerPort: 8080, protocol: 'TCP' }],
        resources: { cpu: '500m', memory: '64Mi' },
        ready: { logPattern: '^ready$' },
        stop: { command: 'stop', timeoutSeconds: 10 },
      },
    };
    ctl(['apply', '-f', '-'], JSON.stringify(template));
    // this run's host ports, apart from anything else on the machine
    ctl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'catalyst.dev/v1alpha1', kind: 'Node', metadata: { name: NODE }, spec: { portRange: { min: 7700, max: 7799 } } }));
    for (const user of ['owner', 'sub']) ctl(['create', 'user', user, '--password-stdin'], `${PASSWORD}\n`);
    ctl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'catalyst.dev/v1alpha1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'owner-admin' },
        spec: { roleRef: 'admin', subjects: [{ kind: 'User', name: 'owner' }] },
      }),
    );
    ctl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'catalyst.dev/v1alpha1',
        kind: 'RoleBinding',
        metadata: { name: 'sub-console', namespace: 'default' },
        spec: { roleRef: 'control.console', subjects: [{ kind: 'User', name: 'sub' }], resourceNames: ['web'] },
      }),
    );
    return teardown;
  } catch (e) {
    await teardown();
    throw e;
  }
}
